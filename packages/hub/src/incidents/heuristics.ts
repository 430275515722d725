import { UNIT_NAME_PATTERN } from '@opspilot/protocol';

export { RISKS, type Analysis, type Risk, type SuggestedAction } from '../storage/tables.ts';
import type { Analysis, Risk, SuggestedAction } from '../storage/tables.ts';

export interface AnalysisInput {
  type: string;
  source: string;
  message: string;
  rule: string | null;
  exit_code: number | null;
}

/** Causes for which a restart does not help and may hide the error: never suggested for them. */
export const NO_RESTART_RULES = new Set(['config_syntax_error', 'permission_denied', 'address_in_use', 'dependency_failed', 'disk_full']);

interface Heuristic {
  root_cause: string;
  rationale: string;
  confidence: number;
  risk: Risk;
  /** Preferred actions, first one the agent offers wins. */
  actions: ((i: AnalysisInput) => SuggestedAction | null)[];
}

const unit = (i: AnalysisInput) => (i.type === 'systemd' && UNIT_NAME_PATTERN.test(i.source) && !i.source.startsWith('-') ? i.source : null);
const status = (i: AnalysisInput) => (unit(i) ? { command: 'service_status', params: { service: unit(i)! }, label: `Show the status of ${unit(i)}` } : null);
const logs = (i: AnalysisInput) => (unit(i) ? { command: 'service_logs', params: { service: unit(i)!, lines: 200 }, label: `Show the last 200 log lines of ${unit(i)}` } : null);
const restart = (i: AnalysisInput) => (unit(i) ? { command: 'restart_service', params: { service: unit(i)! }, label: `Restart ${unit(i)}` } : null);
const disk = () => ({ command: 'disk_usage', params: {}, label: 'Show disk usage' });
const top = () => ({ command: 'top_processes', params: { limit: 15 }, label: 'Show the busiest processes' });

/** Keyed by classification rule (classify.ts). */
const HEURISTICS: Record<string, Heuristic> = {
  address_in_use: {
    root_cause: 'The service could not bind its port because another process is already listening on it (an old instance, or a second service configured for the same port).',
    rationale: 'A restart would hit the same conflict; find what holds the port first.',
    confidence: 0.8,
    risk: 'low',
    actions: [status, logs],
  },
  permission_denied: {
    root_cause: 'The service was refused access to a file, directory or socket it needs: ownership, mode or the unit\'s User= does not allow it.',
    rationale: 'Permissions do not change on restart; the logs name the path that was refused.',
    confidence: 0.75,
    risk: 'low',
    actions: [logs, status],
  },
  oom_kill: {
    root_cause: 'The kernel or systemd killed the process for using more memory than the host or its cgroup allows.',
    rationale: 'A restart frees the memory and usually brings the service back; if it grows again, the leak or the limit needs fixing.',
    confidence: 0.8,
    risk: 'medium',
    actions: [restart, top],
  },
  disk_full: {
    root_cause: 'A filesystem ran out of space, so writes (logs, data, temporary files) fail.',
    rationale: 'Nothing recovers until space is freed; see which filesystem is full.',
    confidence: 0.85,
    risk: 'low',
    actions: [disk],
  },
  config_syntax_error: {
    root_cause: 'The service\'s configuration does not parse, so it refuses to start.',
    rationale: 'Restarting with the same configuration fails the same way; the logs show the file and line.',
    confidence: 0.85,
    risk: 'low',
    actions: [logs, status],
  },
  dependency_failed: {
    root_cause: 'A unit this service requires failed to start, so systemd did not start it.',
    rationale: 'The failing dependency is the place to look; this unit starts once it does.',
    confidence: 0.7,
    risk: 'low',
    actions: [status, logs],
  },
};

/**
 * The analysis without a model: a known cause from the classification, else a cautious first
 * step. `catalogue` is the agent's `hello` actions (null: it sent none, anything may be named).
 */
export function heuristicAnalysis(input: AnalysisInput, catalogue: readonly string[] | null): Analysis {
  const h = input.rule ? HEURISTICS[input.rule] : undefined;
  const offered = (a: SuggestedAction | null) => a !== null && (catalogue === null || catalogue.includes(a.command));
  const pick = (candidates: ((i: AnalysisInput) => SuggestedAction | null)[]) =>
    candidates.map((c) => c(input)).find((a) => offered(a) && !(a!.command === 'restart_service' && NO_RESTART_RULES.has(input.rule ?? ''))) ?? null;
  const what = input.type === 'systemd' ? input.source : `${input.type} ${input.source}`;
  if (h) {
    return {
      summary: `${what}: ${input.message}`.slice(0, 500),
      root_cause: h.root_cause,
      confidence: h.confidence,
      suggested_action: pick(h.actions),
      rationale: h.rationale,
      risk: h.risk,
      source: 'heuristic',
      redactions: 0,
    };
  }
  const fallback = input.type === 'systemd' ? [logs, status] : input.type === 'host' ? [top, disk] : [];
  return {
    summary: `${what}: ${input.message}`.slice(0, 500),
    root_cause: 'Not recognised by the built-in heuristics; the logs are the next place to look.',
    confidence: 0.2,
    suggested_action: pick(fallback),
    rationale: 'A read-only first step; nothing is changed on the host.',
    risk: 'low',
    source: 'heuristic',
    redactions: 0,
  };
}
