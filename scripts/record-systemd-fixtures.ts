/**
 * Records test fixtures from a real systemd: boots the guest (scripts/systemd-guest.ts) with the
 * agent installed, makes real programs fail in the ways the classification rules name, and
 * writes what came out:
 *   packages/hub/test/fixtures/systemd-alerts.json   the alerts the agent sent, with the rule each must get
 *   packages/agent/test/fixtures/journal-*.jsonl     journalctl -o json output of real unit histories
 *
 *   node --import tsx scripts/record-systemd-fixtures.ts      (root; a minute or two)
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startGuestAgent, type GuestAgent } from './guest-agent.ts';
import { SYSTEMD_MESSAGES } from '../packages/agent/src/collectors/journal.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

interface Case {
  rule: string;
  unit: string;
  setup(ga: GuestAgent): Promise<void> | void;
}

const node = (code: string) => `/usr/local/bin/node -e '${code}'`;

/** Real programs failing for real reasons; each unit's alert must get `rule`. */
const CASES: Case[] = [
  {
    rule: 'service_failed',
    unit: 'worker.service',
    setup: (ga) => {
      ga.script('worker', 'echo "worker: starting, pid 503"\necho "warning: cache dir /var/cache/worker missing, using /tmp" >&2\necho "worker: upstream returned 404 for /v1/config, giving up" >&2\nexit 1');
      ga.unit('worker.service', 'ExecStart=/usr/local/bin/worker');
    },
  },
  {
    rule: 'executable_not_found',
    unit: 'app-shell.service',
    setup: (ga) => ga.unit('app-shell.service', 'ExecStart=/bin/sh -c "echo app: starting; exec /opt/app/bin/worker"'),
  },
  {
    rule: 'executable_not_found',
    unit: 'app-exec.service',
    setup: (ga) => ga.unit('app-exec.service', 'ExecStart=/opt/app/bin/server --port 8080'),
  },
  {
    rule: 'disk_full',
    unit: 'export.service',
    setup: (ga) => ga.unit('export.service', 'Type=oneshot\nTemporaryFileSystem=/srv/export:size=64k\nExecStart=/bin/dd if=/dev/zero of=/srv/export/report.bin bs=4k count=64'),
  },
  {
    rule: 'oom_kill',
    unit: 'indexer.service',
    setup: (ga) => ga.unit('indexer.service', `ExecStart=/usr/local/bin/node --max-old-space-size=16 -e 'const a = []; for (;;) a.push(new Array(1e5).fill(a.length));'`),
  },
  {
    rule: 'address_in_use',
    unit: 'api.service',
    setup: (ga) => ga.unit('api.service', `ExecStart=${node(`const net = require("net"); net.createServer().listen(47811, "127.0.0.1", () => { net.createServer().listen(47811, "127.0.0.1"); });`)}`),
  },
  {
    rule: 'permission_denied',
    unit: 'audit-report.service',
    setup: (ga) => ga.unit('audit-report.service', 'Type=oneshot\nUser=nobody\nExecStart=/bin/cat /etc/shadow'),
  },
  {
    rule: 'config_syntax_error',
    unit: 'billing.service',
    setup: (ga) => {
      ga.guest.write('/etc/billing/billing.conf', 'PORT=8080\nWORKERS=4\nif [ "$PORT" = ; then\n');
      ga.unit('billing.service', 'ExecStart=/bin/bash -c "source /etc/billing/billing.conf && exec /bin/sleep infinity"');
    },
  },
  {
    rule: 'segfault',
    unit: 'renderer.service',
    setup: (ga) => {
      ga.script('renderer', 'echo "renderer: loading fonts"\nkill -SEGV $$');
      ga.unit('renderer.service', 'ExecStart=/usr/local/bin/renderer');
    },
  },
  {
    rule: 'dependency_failed',
    unit: 'reports.service',
    setup: (ga) => {
      ga.unit('reports-db.service', 'Type=oneshot\nExecStart=/bin/false');
      ga.unit('reports.service', 'ExecStart=/bin/sleep infinity', 'Requires=reports-db.service\nAfter=reports-db.service\n');
    },
  },
  {
    rule: 'database_connection',
    unit: 'catalog.service',
    setup: (ga) =>
      ga.unit('catalog.service', `ExecStart=${node(`require("net").connect(27017, "127.0.0.1").on("error", (e) => { console.error("catalog: cannot reach mongodb:", e.message); process.exit(1); });`)}`),
  },
  {
    rule: 'timeout',
    unit: 'warmup.service',
    setup: (ga) => ga.unit('warmup.service', 'Type=simple\nTimeoutStartSec=2\nExecStartPre=/bin/sleep 30\nExecStart=/bin/sleep infinity'),
  },
  {
    rule: 'javascript_error',
    unit: 'notifier.service',
    setup: (ga) => ga.unit('notifier.service', `ExecStart=${node(`const config = {}; console.log("notifier: starting"); console.log(config.smtp.host);`)}`),
  },
  {
    rule: 'network_error',
    unit: 'uploader.service',
    setup: (ga) => ga.unit('uploader.service', `ExecStart=${node(`require("net").connect(1, "127.0.0.1").on("error", (e) => { console.error("uploader:", e.stack); process.exit(2); });`)}`),
  },
  {
    rule: 'unit_start_limit',
    unit: 'poller.service',
    setup: (ga) => ga.unit('poller.service', 'ExecStart=/bin/false\nRestart=always\nRestartSec=200ms', 'StartLimitIntervalSec=10\nStartLimitBurst=3\n'),
  },
];

async function record(): Promise<void> {
  const ga = await startGuestAgent({ settleS: 5 });
  try {
    for (const c of CASES) await c.setup(ga);
    await ga.sh('/bin/systemctl', 'daemon-reload');
    for (const c of CASES) await ga.guest.run(['/bin/systemctl', 'start', '--no-block', c.unit]);
    const cases = [];
    for (const c of CASES) {
      const deadline = Date.now() + 60_000;
      let found;
      // The start-limit case ends in failures merged into a second alert: wait for it.
      while (!(found = await ga.incidentOf(c.unit)) || (c.rule === 'unit_start_limit' && found.count < 2)) {
        if (Date.now() > deadline) throw new Error(`no incident for ${c.unit}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      const i = await ga.incident(found.id);
      cases.push({ rule: c.rule, alert: { type: i.type, source: i.source, message: i.message, status: i.unit_status, exit_code: i.exit_code, logs: i.logs } });
      console.log(`${c.unit}: ${i.message} (exit ${i.exit_code}, ${i.unit_status}) -> ${i.rule}`);
    }
    writeFileSync(
      path.join(ROOT, 'packages/hub/test/fixtures/systemd-alerts.json'),
      JSON.stringify({ recorded: 'scripts/record-systemd-fixtures.ts: the agent on Debian bookworm, systemd 252, under systemd-nspawn', cases }, null, 2) + '\n',
    );

    // Journal histories for the watcher's tests: a crash loop under Restart=on-failure, then healthy.
    ga.script('flapper', 'if [ -e /etc/flapper-fixed ]; then echo "flapper: healthy"; exec /bin/sleep infinity; fi\necho "flapper: starting"\nsleep 1\necho "flapper: lost connection to upstream" >&2\nexit 1');
    ga.unit('flapper.service', 'ExecStart=/usr/local/bin/flapper\nRestart=on-failure\nRestartSec=1');
    await ga.sh('/bin/systemctl', 'daemon-reload');
    await ga.sh('/bin/systemctl', 'start', 'flapper.service');
    await new Promise((r) => setTimeout(r, 7000));
    await ga.sh('/usr/bin/touch', '/etc/flapper-fixed');
    await new Promise((r) => setTimeout(r, 4000));
    const ids = Object.values(SYSTEMD_MESSAGES).map((id) => `MESSAGE_ID=${id}`);
    const events = await ga.sh('/bin/journalctl', '--no-pager', '--output=json', 'UNIT=flapper.service', ...ids.flatMap((m) => [m]));
    writeFileSync(path.join(ROOT, 'packages/agent/test/fixtures/journal-crash-loop.jsonl'), events);
    const lines = await ga.sh('/bin/journalctl', '--no-pager', '--output=json', '--unit=flapper.service');
    writeFileSync(path.join(ROOT, 'packages/agent/test/fixtures/journal-crash-loop-unit.jsonl'), lines);
    console.log('recorded the crash loop');
  } finally {
    await ga.close();
  }
}

await record();
