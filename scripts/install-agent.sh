#!/usr/bin/env bash
# Install the OpsPilot agent on a systemd host (Debian, Ubuntu, RHEL-likes).
#
#   sudo scripts/install-agent.sh --hub-url wss://hub.example.com --token opa_... [--bundle FILE]
#
# Installs: the single-file agent (pnpm build:agent) in /usr/local/lib/opspilot, its config in
# /etc/opspilot/agent.json (kept if present, mode 640 root:opspilot), a system user `opspilot`,
# a hardened systemd unit, and a polkit rule that lets that user start, stop and restart units
# (what the restart/start/stop actions need) and nothing else. Needs Node.js 20 or newer.
#
# --root DIR lays the files out under DIR and skips the user, systemctl and the Node check: for
# packaging and for tests.
set -euo pipefail

hub_url=""
token=""
root=""
bundle="$(cd "$(dirname "$0")/.." && pwd)/dist/opspilot-agent.mjs"
node_bin="$(command -v node || true)"
force=0

die() { echo "install-agent: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --hub-url) hub_url="${2:-}"; shift 2 ;;
    --token) token="${2:-}"; shift 2 ;;
    --bundle) bundle="${2:-}"; shift 2 ;;
    --root) root="${2:-}"; shift 2 ;;
    --node) node_bin="${2:-}"; shift 2 ;;
    --force-config) force=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ -f "$bundle" ] || die "no agent bundle at $bundle: run 'pnpm build:agent' first, or pass --bundle"
case "$hub_url" in ws://*|wss://*|http://*|https://*) ;; *) die "--hub-url must be a ws://, wss://, http:// or https:// URL" ;; esac
[[ "$token" =~ ^[A-Za-z0-9_-]{16,512}$ ]] || die "--token must be the agent token from POST /v1/agents"

if [ -z "$root" ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root (or use --root DIR to stage the files)"
  [ -n "$node_bin" ] || die "Node.js 20 or newer is needed (node not found)"
  major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "Node.js 20 or newer is needed (found $("$node_bin" --version))"
  command -v systemctl >/dev/null || die "systemd is needed (systemctl not found)"
else
  node_bin="${node_bin:-/usr/bin/node}"
fi

lib="$root/usr/local/lib/opspilot"
etc="$root/etc/opspilot"
state="$root/var/lib/opspilot"
unit="$root/etc/systemd/system/opspilot-agent.service"
polkit="$root/etc/polkit-1/rules.d/50-opspilot-agent.rules"

if [ -z "$root" ] && ! id opspilot >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/opspilot --no-create-home --shell /usr/sbin/nologin opspilot
fi
if [ -z "$root" ]; then
  # Reading unit journals and /var/log files.
  for group in systemd-journal adm; do
    getent group "$group" >/dev/null && usermod -a -G "$group" opspilot
  done
fi

install -d -m 755 "$lib" "$root/etc/systemd/system" "$root/etc/polkit-1/rules.d"
install -d -m 750 "$etc"
install -d -m 700 "$state"
install -m 644 "$bundle" "$lib/opspilot-agent.mjs"

if [ ! -f "$etc/agent.json" ] || [ "$force" -eq 1 ]; then
  umask 027
  printf '{\n  "hub_url": "%s",\n  "token": "%s",\n  "state_dir": "/var/lib/opspilot"\n}\n' "$hub_url" "$token" > "$etc/agent.json.tmp"
  mv "$etc/agent.json.tmp" "$etc/agent.json"
  chmod 640 "$etc/agent.json"
else
  echo "install-agent: keeping the existing $etc/agent.json (--force-config to replace it)"
fi

cat > "$unit" <<UNIT
[Unit]
Description=OpsPilot agent
Documentation=https://github.com/opspilot/opspilot
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=opspilot
Group=opspilot
ExecStart=$node_bin /usr/local/lib/opspilot/opspilot-agent.mjs --config /etc/opspilot/agent.json
Restart=on-failure
RestartSec=5
# SIGTERM: the agent writes what is pending to its outbox and closes its connection.
KillSignal=SIGTERM
TimeoutStopSec=20

# Hardening: the agent reads the system and writes only its state directory. Restarting units
# goes through systemd's D-Bus API and polkit (see $polkit), not through privileges of its own.
# Inside a container (systemd-nspawn, LXC) ProtectKernelTunables= and ProtectControlGroups= give
# the agent a /proc without the container's own boot id; the agent takes the boot from the
# journal instead, so these stay on there too.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths=/var/lib/opspilot
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
CapabilityBoundingSet=
AmbientCapabilities=
UMask=0077
MemoryMax=256M

[Install]
WantedBy=multi-user.target
UNIT

cat > "$polkit" <<'RULES'
// OpsPilot agent: the user "opspilot" may start, stop and restart systemd units, nothing else.
polkit.addRule(function (action, subject) {
  if (action.id === "org.freedesktop.systemd1.manage-units" && subject.user === "opspilot") {
    var verb = action.lookup("verb");
    if (verb === "start" || verb === "stop" || verb === "restart") return polkit.Result.YES;
  }
});
RULES
chmod 644 "$unit" "$polkit"

if [ -z "$root" ]; then
  chown root:opspilot "$etc" "$etc/agent.json"
  chown opspilot:opspilot "$state"
  systemctl daemon-reload
  systemctl enable --now opspilot-agent.service
  echo "install-agent: opspilot-agent is running; logs: journalctl -u opspilot-agent -f"
else
  echo "install-agent: staged under $root"
fi
