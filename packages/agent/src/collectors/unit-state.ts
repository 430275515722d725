import { runCommand } from '../exec/runner.ts';
import { UNIT_NAME_PATTERN } from '@opspilot/protocol';

const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' };
const PROPERTIES = ['Id', 'Type', 'LoadState', 'ActiveState', 'SubState', 'Result', 'InvocationID', 'ActiveEnterTimestampMonotonic', 'ExecMainCode', 'ExecMainStatus'] as const;

/** What `systemctl show` says of a unit, the properties the watcher decides on. */
export interface UnitState {
  id: string;
  type: string;
  loadState: string;
  activeState: string;
  subState: string;
  result: string;
  invocation: string | undefined;
  /** CLOCK_MONOTONIC microseconds when it last became active; 0 if never. */
  activeEnterMonoUs: bigint;
  /** ExecMainCode is CLD_EXITED (1) for a normal exit: then ExecMainStatus is the exit status. */
  exitStatus: number | undefined;
}

/** Parse the `Key=value` blocks of `systemctl show` (one block per unit, blank-line separated). */
export function parseShow(text: string): UnitState[] {
  const out: UnitState[] = [];
  for (const block of text.split('\n\n')) {
    const p = new Map<string, string>();
    for (const line of block.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) p.set(line.slice(0, eq), line.slice(eq + 1));
    }
    if (!p.get('Id')) continue;
    const mono = p.get('ActiveEnterTimestampMonotonic') ?? '0';
    const status = Number(p.get('ExecMainStatus'));
    out.push({
      id: p.get('Id')!,
      type: p.get('Type') ?? '',
      loadState: p.get('LoadState') ?? '',
      activeState: p.get('ActiveState') ?? '',
      subState: p.get('SubState') ?? '',
      result: p.get('Result') ?? '',
      invocation: p.get('InvocationID') || undefined,
      activeEnterMonoUs: /^\d{1,20}$/.test(mono) ? BigInt(mono) : 0n,
      exitStatus: p.get('ExecMainCode') === '1' && Number.isInteger(status) ? status : undefined,
    });
  }
  return out;
}

export type Recovery = { kind: 'healthy'; message: string } | { kind: 'wait'; ms: number } | { kind: 'not-healthy' };

/**
 * Has a unit that failed recovered? Only when it is healthy, never on a start alone:
 * - a oneshot: a later run finished successfully: active with RemainAfterExit, or inactive with
 *   result success right after a run the journal named (`ranInvocation`: systemd forgets the
 *   invocation id of an inactive unit, so it has to come from the journal entry);
 * - anything else: active, and active without a break for `settleMs` (a restart resets
 *   ActiveEnterTimestamp, so a crash loop never qualifies);
 * - still starting, or active for less than that: look again later;
 * - failed, in systemd's auto-restart, stopped, or still the run that failed: not recovered.
 */
export function assessRecovery(
  state: UnitState,
  failedInvocation: string | undefined,
  nowMonoUs: bigint,
  settleMs: number,
  ranInvocation?: string,
): Recovery {
  if (state.invocation !== undefined && state.invocation === failedInvocation) return { kind: 'not-healthy' };
  if (state.type === 'oneshot') {
    const ranSince = ranInvocation !== undefined && ranInvocation !== failedInvocation;
    const ok = state.result === 'success' && (state.activeState === 'active' || (state.activeState === 'inactive' && ranSince));
    return ok ? { kind: 'healthy', message: `${state.id}: ran successfully` } : { kind: 'not-healthy' };
  }
  if (state.activeState === 'active') {
    const activeMs = Number((nowMonoUs - state.activeEnterMonoUs) / 1000n);
    if (state.activeEnterMonoUs > 0n && activeMs >= settleMs) return { kind: 'healthy', message: `${state.id}: active for ${Math.round(activeMs / 1000)} s` };
    return { kind: 'wait', ms: Math.max(100, settleMs - Math.max(0, activeMs)) };
  }
  if ((state.activeState === 'activating' && state.subState !== 'auto-restart') || state.activeState === 'reloading') return { kind: 'wait', ms: settleMs };
  return { kind: 'not-healthy' };
}

/** systemctl as the watcher uses it: read-only questions, bounded. */
export class Units {
  constructor(private readonly argv: readonly string[] = ['systemctl']) {}

  async show(unit: string): Promise<UnitState | null> {
    if (!UNIT_NAME_PATTERN.test(unit)) return null;
    const res = await this.#run(['show', `--property=${PROPERTIES.join(',')}`, '--', unit]);
    if (res.error_code || res.exit_code !== 0) return null;
    return parseShow(res.stdout)[0] ?? null;
  }

  /** Units systemd holds as failed now. */
  async failed(): Promise<string[] | null> {
    const res = await this.#run(['list-units', '--state=failed', '--all', '--plain', '--no-legend', '--full']);
    if (res.error_code || res.exit_code !== 0) return null;
    return res.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((u) => UNIT_NAME_PATTERN.test(u));
  }

  #run(args: string[]) {
    const [cmd, ...prefix] = this.argv;
    return runCommand([cmd!, ...prefix, '--no-pager', ...args], 15_000, ENV);
  }
}
