/**
 * A real systemd to test the agent on: Debian bookworm, made once with debootstrap and cached,
 * booted with systemd-nspawn (systemd as PID 1) on a throwaway overlay. The guest shares the
 * host's network, so it reaches a hub on 127.0.0.1.
 *
 *   node --import tsx scripts/systemd-guest.ts prepare   # build the cached rootfs (CI does this first)
 *   node --import tsx scripts/systemd-guest.ts check     # say whether a guest can boot here, and why not
 *
 * Needs root, Debian's systemd-container (systemd-nspawn) and debootstrap, nsenter (util-linux),
 * overlayfs, and cgroups with a name=systemd or unified hierarchy. On these machines nspawn needs
 * --register=no --keep-unit (no systemd on the host to register with) and a cgroup of its own
 * under each hierarchy, which the launcher below makes before it starts nspawn.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCommand } from '../packages/agent/src/exec/runner.ts';

const SUITE = 'bookworm';
const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'libpam-systemd', 'polkitd', 'procps'];
/** Bump when the recipe changes, so cached root filesystems are made again. */
const RECIPE = 1;
const CACHE = process.env.OPSPILOT_GUEST_CACHE || '/var/cache/opspilot/guest';
const MIRROR = process.env.OPSPILOT_GUEST_MIRROR || 'http://deb.debian.org/debian';
const CGROUP_ROOTS = ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified', '/sys/fs/cgroup'];
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };
const LAUNCHER = path.join(import.meta.dirname, 'systemd-guest-launch.mjs');

function recipeKey(): string {
  return createHash('sha256').update(JSON.stringify({ SUITE, PACKAGES, RECIPE, MIRROR })).digest('hex').slice(0, 12);
}

export function rootfsPath(): string {
  return path.join(CACHE, `${SUITE}-${recipeKey()}`, 'rootfs');
}

/** Why a guest cannot boot on this machine, or null when it can. */
export function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (systemd-nspawn, overlay mounts, cgroups)';
  for (const tool of ['/usr/bin/systemd-nspawn', '/usr/sbin/debootstrap', '/usr/bin/nsenter']) {
    if (!existsSync(tool)) return `${tool} is missing (apt-get install systemd-container debootstrap util-linux)`;
  }
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return 'the kernel has no overlayfs';
  if (cgroupRoots().length === 0) return 'no writable cgroup hierarchy';
  return null;
}

function cgroupRoots(): string[] {
  const roots: string[] = [];
  for (const root of CGROUP_ROOTS) {
    if (existsSync(path.join(root, 'cgroup.procs')) && !roots.some((r) => root.startsWith(r + '/'))) roots.push(root);
  }
  // A pure cgroup2 host has only /sys/fs/cgroup; a hybrid one has name=systemd and unified.
  return roots.includes('/sys/fs/cgroup') && roots.length > 1 ? roots.filter((r) => r !== '/sys/fs/cgroup') : roots;
}

async function run(argv: string[], timeoutMs: number, what: string): Promise<string> {
  const res = await runCommand(argv, timeoutMs, ENV);
  if (res.error_code || res.exit_code !== 0) throw new Error(`${what} failed (${res.error_code ?? `exit ${res.exit_code}`}): ${(res.stderr || res.stdout).slice(-2000)}`);
  return res.stdout;
}

/**
 * The cached root filesystem, made with debootstrap when absent (a minute or two, once per
 * machine and recipe). Made in a temp directory and renamed into place, so a half-made one is
 * never used.
 */
export async function prepareRootfs(log: (m: string) => void = () => {}): Promise<string> {
  const rootfs = rootfsPath();
  if (existsSync(path.join(rootfs, '.opspilot-ready'))) return rootfs;
  const why = unavailable();
  if (why) throw new Error(`cannot make a systemd guest here: ${why}`);
  const parent = path.dirname(rootfs);
  mkdirSync(CACHE, { recursive: true });
  const work = mkdtempSync(path.join(CACHE, 'making-'));
  try {
    log(`debootstrap ${SUITE} (${PACKAGES.join(', ')}) into ${rootfs}`);
    // debootstrap is a shell script by design; its arguments are fixed here, never user input.
    await run(['/usr/sbin/debootstrap', '--variant=minbase', `--include=${PACKAGES.join(',')}`, SUITE, path.join(work, 'rootfs'), MIRROR], 20 * 60_000, 'debootstrap');
    const root = path.join(work, 'rootfs');
    writeFileSync(path.join(root, 'etc/hostname'), 'opspilot-guest\n');
    writeFileSync(path.join(root, 'etc/machine-id'), ''); // each boot gets its own
    // No timers or gettys that only add noise to the journal and work to the boot.
    for (const unit of ['apt-daily.timer', 'apt-daily-upgrade.timer', 'dpkg-db-backup.timer', 'e2scrub_all.timer', 'fstrim.timer']) {
      rmSync(path.join(root, 'etc/systemd/system/timers.target.wants', unit), { force: true });
    }
    mkdirSync(path.join(root, 'usr/local/bin'), { recursive: true });
    writeFileSync(path.join(root, '.opspilot-ready'), `${new Date().toISOString()}\n`);
    rmSync(parent, { recursive: true, force: true }); // a half-made one from an interrupted run
    mkdirSync(parent, { recursive: true });
    renameSync(root, rootfs);
    return rootfs;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface GuestResult {
  exit_code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * One booted guest. `run` executes a command inside it (as root, through nsenter, no shell);
 * `path` maps a guest path to where it is on the host (its overlay), for writing files.
 */
export class Guest {
  #leader = 0;
  #consoleTail = '';
  #exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    private readonly dir: string,
    private readonly merged: string,
    private readonly cgroups: string[],
    private readonly child: ChildProcess,
  ) {
    child.stdout!.on('data', (c: Buffer) => (this.#consoleTail = (this.#consoleTail + c.toString()).slice(-8000)));
    child.stderr!.on('data', (c: Buffer) => (this.#consoleTail = (this.#consoleTail + c.toString()).slice(-8000)));
    this.#exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async boot(opts: { nodeBinary?: string } = {}): Promise<Guest> {
    const rootfs = await prepareRootfs();
    const name = `opspilot-${randomBytes(4).toString('hex')}`;
    const dir = mkdtempSync(path.join(tmpdir(), `${name}-`));
    const merged = path.join(dir, 'merged');
    for (const d of ['upper', 'work', 'merged']) mkdirSync(path.join(dir, d));
    await run(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${rootfs},upperdir=${path.join(dir, 'upper')},workdir=${path.join(dir, 'work')}`, merged], 30_000, 'overlay mount');
    const cgroups = cgroupRoots().map((root) => path.join(root, name));
    for (const cg of cgroups) mkdirSync(cg);
    const node = opts.nodeBinary ?? process.execPath;
    const child = spawn(
      process.execPath,
      [
        LAUNCHER,
        ...cgroups.flatMap((cg) => ['--cgroup', cg]),
        '--',
        '/usr/bin/systemd-nspawn',
        '--quiet',
        '--register=no',
        '--keep-unit',
        `--directory=${merged}`,
        `--machine=${name}`,
        '--boot',
        '--console=read-only',
        // The host's Node.js, for the agent: the guest is the same Debian release.
        `--bind-ro=${node}:/usr/local/bin/node`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: ENV },
    );
    const guest = new Guest(name, dir, merged, cgroups, child);
    try {
      await guest.#waitBooted();
    } catch (err) {
      await guest.destroy();
      throw err;
    }
    return guest;
  }

  /** Where the guest's `p` is on the host (the overlay's merged view). */
  path(p: string): string {
    return path.join(this.merged, p);
  }

  write(p: string, content: string, mode = 0o644): void {
    const host = this.path(p);
    mkdirSync(path.dirname(host), { recursive: true });
    writeFileSync(host, content, { mode });
  }

  read(p: string): string {
    return readFileSync(this.path(p), 'utf8');
  }

  /** Run argv inside the guest as root, in all its namespaces, without a shell. */
  async run(argv: string[], timeoutMs = 60_000): Promise<GuestResult> {
    if (!this.#leader) throw new Error('the guest is not running');
    // env -i: nothing of this process's environment reaches the guest (test runners inject
    // NODE_OPTIONS into every child, naming files that exist only on the host).
    const res = await runCommand(['/usr/bin/nsenter', `--target=${this.#leader}`, '--all', '--', '/usr/bin/env', '-i', ...Object.entries(ENV).map(([k, v]) => `${k}=${v}`), ...argv], timeoutMs, ENV);
    return { exit_code: res.exit_code, stdout: res.stdout, stderr: res.stderr + (res.error_code ? ` [${res.error_code}]` : '') };
  }

  /** Like run, but a non-zero exit is an error that says what the command printed. */
  async must(argv: string[], timeoutMs = 60_000): Promise<string> {
    const res = await this.run(argv, timeoutMs);
    if (res.exit_code !== 0) throw new Error(`in the guest, ${argv.join(' ')} exited ${res.exit_code}: ${(res.stderr || res.stdout).slice(-2000)}`);
    return res.stdout;
  }

  get console(): string {
    return this.#consoleTail;
  }

  async #waitBooted(): Promise<void> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`systemd-nspawn exited ${this.child.exitCode}: ${this.#consoleTail.slice(-2000)}`);
      if (!this.#leader) this.#leader = this.#findLeader();
      if (this.#leader) {
        const state = (await this.run(['/usr/bin/systemctl', 'is-system-running']).catch(() => null))?.stdout.trim();
        if (state === 'running' || state === 'degraded') return;
      }
      if (Date.now() > deadline) throw new Error(`the guest did not boot in 120 s: ${this.#consoleTail.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The guest's PID 1 as the host sees it: the child of systemd-nspawn that runs systemd. */
  #findLeader(): number {
    const nspawn = childrenOf(this.child.pid!)[0];
    if (!nspawn) return 0;
    for (const pid of childrenOf(nspawn)) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd') return pid;
      } catch {
        // gone already
      }
    }
    return 0;
  }

  /** Power the guest off (SIGTERM makes nspawn shut it down cleanly), then remove every trace. */
  async destroy(): Promise<void> {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
      await this.#exited;
      clearTimeout(timer);
    }
    this.#leader = 0;
    await runCommand(['umount', this.merged], 30_000, ENV);
    rmSync(this.dir, { recursive: true, force: true });
    for (const cg of this.cgroups) removeCgroup(cg);
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      for (const c of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    }
  } catch {
    // the process is gone
  }
  return out;
}

/** A cgroup and everything the guest's systemd made below it (each must be empty by now). */
function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    const sub = path.join(dir, entry);
    try {
      if (statSync(sub).isDirectory()) removeCgroup(sub);
    } catch {
      // raced with the kernel removing it
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    // still has processes (a leak the next boot does not share: names are random)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const cmd = process.argv[2];
  if (cmd === 'check') {
    const why = unavailable();
    console.log(why ? `no systemd guest here: ${why}` : `a systemd guest can boot here (rootfs ${existsSync(rootfsPath()) ? 'cached' : 'not made yet'}: ${rootfsPath()})`);
    process.exit(why ? 1 : 0);
  } else if (cmd === 'prepare') {
    const started = Date.now();
    const rootfs = await prepareRootfs((m) => console.log(m));
    console.log(`systemd guest rootfs ready: ${rootfs} (${Math.round((Date.now() - started) / 1000)} s)`);
  } else if (cmd === 'boot') {
    // By hand: boot one, print how to get in, keep it until Ctrl-C.
    const guest = await Guest.boot();
    console.log(`booted ${guest.name}; files at ${guest.path('/')}`);
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    await guest.destroy();
  } else {
    console.error('usage: systemd-guest.ts prepare|check|boot');
    process.exit(2);
  }
}
