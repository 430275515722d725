import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ActionSpec, ParamSpec } from './exec/catalogue.ts';
import { linearPattern } from './pattern.ts';

/** The agent's one config object, from a JSON file and the environment; validated, frozen. */
export interface AgentConfig {
  hub_url: string;
  token: string;
  state_dir: string;
  heartbeat_interval_s: number;
  metrics_interval_s: number;
  systemd: { enabled: boolean; units?: string[]; settle_s: number };
  logs: { path: string; pattern: string }[];
  thresholds: { cpu_pct: number; mem_pct: number; disk_pct: number; for_s: number };
  actions: Record<string, ActionSpec>;
  max_concurrent_execs: number;
  outbox_max_entries: number;
  /**
   * Uptime checks the hub sends (protocol 2): run them (default), how many at once, and whether
   * they may reach link-local and metadata addresses (default not: a monitor is not a way to the
   * host's cloud credentials).
   */
  monitors: { enabled: boolean; max_concurrent: number; allow_link_local: boolean };
  /** Where the token came from, for messages: "OPSPILOT_AGENT_TOKEN" or "token in <file>". */
  token_from?: string;
}

export const DEFAULT_CONFIG_PATH = '/etc/opspilot/agent.json';
export const DEFAULT_LOG_PATTERN = 'error|fatal|panic|segfault|out of memory';

export class AgentConfigError extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`invalid agent config ${key}: ${reason}`);
    this.name = 'AgentConfigError';
  }
}

type Raw = Record<string, unknown>;

function object(value: unknown, key: string, allowed: readonly string[]): Raw {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AgentConfigError(key, 'must be an object');
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) throw new AgentConfigError(key ? `${key}.${k}` : k, 'unknown key');
  }
  return value as Raw;
}
function string(value: unknown, key: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new AgentConfigError(key, 'must be a non-empty string');
  return value;
}
function integer(value: unknown, key: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new AgentConfigError(key, `must be an integer from ${min} to ${max}`);
  }
  return value;
}
function boolean(value: unknown, key: string): boolean {
  if (typeof value !== 'boolean') throw new AgentConfigError(key, 'must be true or false');
  return value;
}
function regex(value: unknown, key: string): string {
  const source = string(value, key);
  try {
    linearPattern(source, { caseInsensitive: true });
  } catch (err) {
    throw new AgentConfigError(key, `is not a valid regular expression: ${(err as Error).message}`);
  }
  return source;
}

/** ws(s)://host[:port]/path; a bare host gets the hub's stream path. http(s) is taken as ws(s). */
export function normalizeHubUrl(value: string, key = 'hub_url'): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AgentConfigError(key, `is not a URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new AgentConfigError(key, 'must be a ws://, wss://, http:// or https:// URL');
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/stream';
  if (url.username || url.password) throw new AgentConfigError(key, 'must not carry credentials; use token');
  return url.toString();
}

function paramSpec(value: unknown, key: string): ParamSpec {
  const raw = object(value, key, ['type', 'pattern', 'required', 'default', 'maxLength', 'min', 'max']);
  const required = raw.required === undefined ? undefined : boolean(raw.required, `${key}.required`);
  switch (raw.type) {
    case 'string': {
      const spec: ParamSpec = { type: 'string', pattern: regex(raw.pattern, `${key}.pattern`) };
      if (!spec.pattern.startsWith('^') || !spec.pattern.endsWith('$')) throw new AgentConfigError(`${key}.pattern`, 'must be anchored with ^ and $');
      if (required !== undefined) spec.required = required;
      if (raw.default !== undefined) spec.default = string(raw.default, `${key}.default`);
      if (raw.maxLength !== undefined) spec.maxLength = integer(raw.maxLength, `${key}.maxLength`, 1, 4096);
      return spec;
    }
    case 'integer': {
      const spec: ParamSpec = { type: 'integer', min: integer(raw.min, `${key}.min`, -(2 ** 31), 2 ** 31), max: integer(raw.max, `${key}.max`, -(2 ** 31), 2 ** 31) };
      if (required !== undefined) spec.required = required;
      if (raw.default !== undefined) spec.default = integer(raw.default, `${key}.default`, spec.min, spec.max);
      return spec;
    }
    case 'boolean': {
      const spec: ParamSpec = { type: 'boolean' };
      if (required !== undefined) spec.required = required;
      if (raw.default !== undefined) spec.default = boolean(raw.default, `${key}.default`);
      return spec;
    }
    default:
      throw new AgentConfigError(`${key}.type`, 'must be "string", "integer" or "boolean"');
  }
}

function actionSpec(value: unknown, key: string): ActionSpec {
  const raw = object(value, key, ['argv', 'params', 'timeout_ms']);
  if (!Array.isArray(raw.argv) || raw.argv.length === 0) throw new AgentConfigError(`${key}.argv`, 'must be a non-empty array of strings');
  const argv = raw.argv.map((a, i) => string(a, `${key}.argv[${i}]`));
  if (!path.isAbsolute(argv[0]!)) throw new AgentConfigError(`${key}.argv[0]`, 'must be an absolute path (no PATH lookup for operator actions)');
  const params: Record<string, ParamSpec> = {};
  const rawParams = raw.params === undefined ? {} : object(raw.params, `${key}.params`, Object.keys(raw.params as object));
  for (const [name, spec] of Object.entries(rawParams)) {
    if (!/^[A-Za-z0-9_]{1,64}$/.test(name)) throw new AgentConfigError(`${key}.params.${name}`, 'parameter names are [A-Za-z0-9_]');
    params[name] = paramSpec(spec, `${key}.params.${name}`);
  }
  for (const [i, arg] of argv.entries()) {
    const m = /^\{([A-Za-z0-9_]+)\}$/.exec(arg);
    if (m && !params[m[1]!]) throw new AgentConfigError(`${key}.argv[${i}]`, `names parameter "${m[1]}", which is not declared`);
    if (!m && /\{[A-Za-z0-9_]+\}/.test(arg)) throw new AgentConfigError(`${key}.argv[${i}]`, 'a parameter must be a whole argument, like "{name}"');
  }
  return { argv, params, timeout_ms: raw.timeout_ms === undefined ? 30_000 : integer(raw.timeout_ms, `${key}.timeout_ms`, 1, 600_000) };
}

const TOP_KEYS = [
  'hub_url',
  'token',
  'state_dir',
  'heartbeat_interval_s',
  'metrics_interval_s',
  'systemd',
  'logs',
  'thresholds',
  'actions',
  'max_concurrent_execs',
  'outbox_max_entries',
  'monitors',
] as const;

/** Validate a parsed config (file contents merged with the environment). */
export function resolveAgentConfig(input: unknown, defaults: { stateDir: string }): Readonly<AgentConfig> {
  const raw = object(input, '', TOP_KEYS);
  const systemdRaw = raw.systemd === undefined ? {} : object(raw.systemd, 'systemd', ['enabled', 'units', 'settle_s']);
  const thresholdsRaw = raw.thresholds === undefined ? {} : object(raw.thresholds, 'thresholds', ['cpu_pct', 'mem_pct', 'disk_pct', 'for_s']);
  if (raw.logs !== undefined && !Array.isArray(raw.logs)) throw new AgentConfigError('logs', 'must be an array');
  const actionsRaw = raw.actions === undefined ? {} : object(raw.actions, 'actions', Object.keys(raw.actions as object));
  const monitorsRaw = raw.monitors === undefined ? {} : object(raw.monitors, 'monitors', ['enabled', 'max_concurrent', 'allow_link_local']);

  const systemd: AgentConfig['systemd'] = {
    enabled: systemdRaw.enabled === undefined ? true : boolean(systemdRaw.enabled, 'systemd.enabled'),
    // A unit that failed counts as recovered once it has been active this long without a break.
    settle_s: systemdRaw.settle_s === undefined ? 30 : integer(systemdRaw.settle_s, 'systemd.settle_s', 1, 3600),
  };
  if (systemdRaw.units !== undefined) {
    if (!Array.isArray(systemdRaw.units)) throw new AgentConfigError('systemd.units', 'must be an array of unit names');
    systemd.units = systemdRaw.units.map((u, i) => {
      const unit = string(u, `systemd.units[${i}]`);
      if (!/^[A-Za-z0-9@._:-]{1,200}$/.test(unit) || unit.startsWith('-')) throw new AgentConfigError(`systemd.units[${i}]`, 'is not a unit name');
      return unit;
    });
  }
  const actions: Record<string, ActionSpec> = {};
  for (const [name, spec] of Object.entries(actionsRaw)) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new AgentConfigError(`actions.${name}`, 'action names are [A-Za-z0-9_.-]');
    actions[name] = actionSpec(spec, `actions.${name}`);
  }
  const config: AgentConfig = {
    hub_url: normalizeHubUrl(string(raw.hub_url, 'hub_url')),
    token: string(raw.token, 'token'),
    state_dir: raw.state_dir === undefined ? defaults.stateDir : string(raw.state_dir, 'state_dir'),
    heartbeat_interval_s: raw.heartbeat_interval_s === undefined ? 10 : integer(raw.heartbeat_interval_s, 'heartbeat_interval_s', 1, 3600),
    metrics_interval_s: raw.metrics_interval_s === undefined ? 15 : integer(raw.metrics_interval_s, 'metrics_interval_s', 1, 3600),
    systemd,
    logs: ((raw.logs as unknown[] | undefined) ?? []).map((entry, i) => {
      const e = object(entry, `logs[${i}]`, ['path', 'pattern']);
      const p = string(e.path, `logs[${i}].path`);
      if (!path.isAbsolute(p)) throw new AgentConfigError(`logs[${i}].path`, 'must be an absolute path');
      return { path: p, pattern: e.pattern === undefined ? DEFAULT_LOG_PATTERN : regex(e.pattern, `logs[${i}].pattern`) };
    }),
    thresholds: {
      cpu_pct: thresholdsRaw.cpu_pct === undefined ? 90 : integer(thresholdsRaw.cpu_pct, 'thresholds.cpu_pct', 1, 100),
      mem_pct: thresholdsRaw.mem_pct === undefined ? 95 : integer(thresholdsRaw.mem_pct, 'thresholds.mem_pct', 1, 100),
      disk_pct: thresholdsRaw.disk_pct === undefined ? 95 : integer(thresholdsRaw.disk_pct, 'thresholds.disk_pct', 1, 100),
      for_s: thresholdsRaw.for_s === undefined ? 300 : integer(thresholdsRaw.for_s, 'thresholds.for_s', 0, 86_400),
    },
    actions,
    max_concurrent_execs: raw.max_concurrent_execs === undefined ? 4 : integer(raw.max_concurrent_execs, 'max_concurrent_execs', 1, 64),
    outbox_max_entries: raw.outbox_max_entries === undefined ? 10_000 : integer(raw.outbox_max_entries, 'outbox_max_entries', 10, 1_000_000),
    monitors: {
      enabled: monitorsRaw.enabled === undefined ? true : boolean(monitorsRaw.enabled, 'monitors.enabled'),
      max_concurrent: monitorsRaw.max_concurrent === undefined ? 8 : integer(monitorsRaw.max_concurrent, 'monitors.max_concurrent', 1, 64),
      allow_link_local: monitorsRaw.allow_link_local === undefined ? false : boolean(monitorsRaw.allow_link_local, 'monitors.allow_link_local'),
    },
  };
  return Object.freeze(config);
}

/**
 * Load the config: `--config` (or OPSPILOT_AGENT_CONFIG, else /etc/opspilot/agent.json), then
 * OPSPILOT_HUB_URL, OPSPILOT_AGENT_TOKEN and OPSPILOT_AGENT_STATE_DIR over it. The default file
 * may be absent when the environment gives the hub and the token; a file named explicitly must
 * exist.
 */
export function loadAgentConfig(argv: readonly string[], env: NodeJS.ProcessEnv, isRoot: boolean): Readonly<AgentConfig> {
  const flag = argv.indexOf('--config');
  const explicit = flag >= 0 ? argv[flag + 1] : env.OPSPILOT_AGENT_CONFIG || undefined;
  if (flag >= 0 && !explicit) throw new AgentConfigError('--config', 'needs a file path');
  const file = explicit ?? DEFAULT_CONFIG_PATH;
  let fromFile: Raw = {};
  if (explicit || existsSync(file)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new AgentConfigError('--config', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      fromFile = JSON.parse(text) as Raw;
    } catch (err) {
      throw new AgentConfigError('--config', `${file} is not JSON: ${(err as Error).message}`);
    }
  }
  const merged: Raw = { ...fromFile };
  if (env.OPSPILOT_HUB_URL) merged.hub_url = env.OPSPILOT_HUB_URL;
  if (env.OPSPILOT_AGENT_TOKEN) merged.token = env.OPSPILOT_AGENT_TOKEN;
  if (env.OPSPILOT_AGENT_STATE_DIR) merged.state_dir = env.OPSPILOT_AGENT_STATE_DIR;
  const config = resolveAgentConfig(merged, { stateDir: isRoot ? '/var/lib/opspilot' : path.resolve('data/agent') });
  return Object.freeze({ ...config, token_from: env.OPSPILOT_AGENT_TOKEN ? 'OPSPILOT_AGENT_TOKEN' : `"token" in ${file}` });
}
