import { DEFAULT_DASHBOARD_DIR } from './dashboard.ts';
import { StartupError } from './errors.ts';
import { DEFAULT_LIMITS } from '@opspilot/protocol';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The hub's one config object: built once at start, validated, frozen, passed down. */
export interface HubConfig {
  port: number;
  host: string;
  /** Admin bearer token for REST; null means use the stored ones (one is generated at first start). */
  adminToken: string | null;
  dataDir: string;
  /** PostgreSQL connection string; null means PGlite in `${dataDir}/pglite`. */
  databaseUrl: string | null;
  logLevel: LogLevel;
  maxFrameBytes: number;
  maxPayloadBytes: number;
  heartbeatIntervalS: number;
  pingIntervalMs: number;
  authTimeoutMs: number;
  badFramesPerMinute: number;
  maxUnauthenticated: number;
  flushIntervalMs: number;
  bulkIntervalMs: number;
  maxBatchItems: number;
  /** This hub's name among the others on one PostgreSQL (GET /v1/hubs, logs); null: host name and process id. */
  hubName: string | null;
  /**
   * A second port answering only `/healthz` and `/readyz`, for a load balancer's checks; 0: none.
   * Its own listening socket, so checks never wait in the accept queue behind agents' connects.
   */
  healthPort: number;
  execDefaultTimeoutMs: number;
  execMaxTimeoutMs: number;
  /** How long envelope ids are remembered for dedupe. */
  dedupeRetentionDays: number;
  /** Operator classification rules (JSON), tried before the built-in ones; null for none. */
  rulesFile: string | null;
  /** Any OpenAI-compatible API. Without a key, analyses come from the heuristics. */
  llmBaseUrl: string;
  llmApiKey: string | null;
  llmModel: string;
  llmTimeoutMs: number;
  llmMaxRetries: number;
  analysisConcurrency: number;
  /** A model's analysis of the same fingerprint younger than this is reused; 0 never reuses. */
  analysisReuseS: number;
  /** Extra redaction patterns (JSON array of {name, pattern}); null for the built-in ones only. */
  redactionsFile: string | null;
  /** Slack app mode (buttons): bot token, signing secret and channel together. */
  slackBotToken: string | null;
  slackSigningSecret: string | null;
  slackChannel: string | null;
  /** Post-only mode (an incoming webhook: no buttons, no edits). */
  slackWebhookUrl: string | null;
  /** The Web API base (tests and proxies). */
  slackApiUrl: string;
  /** Slack user ids allowed to run actions that change a host (and to ignore incidents). */
  slackAllowedUsers: readonly string[];
  /** Least time between two posts to one channel. */
  slackPaceMs: number;
  /** How long the Ignore button mutes a fingerprint. */
  slackIgnoreS: number;
  /** Alerts and resolves one agent may send per minute before the hub stops reading from it for a while. */
  alertsPerMinute: number;
  /** Hellos, heartbeats and metrics messages one agent may send per minute, likewise. */
  bulkPerMinute: number;
  /** Metric samples one agent may send per minute, likewise. */
  metricSamplesPerMinute: number;
  /** Metric samples are kept as sent this long, then as 5-minute averages... */
  metricsRawHours: number;
  /** ...until they are this old. */
  metricsRetentionDays: number;
  /** Monitor results are kept as checked this long, then as one row per location and hour... */
  monitorResultsRawDays: number;
  /** ...until they are this old. */
  monitorResultsRetentionDays: number;
  /** TCP connections the hub holds at once (agents, REST, anything); more are closed at once. */
  maxConnections: number;
  /** A connection that has not sent a whole request (or upgrade) in this time is closed. */
  requestHeadersTimeoutMs: number;
  /** REST requests one token may make per minute. */
  apiRateLimit: number;
  /** The largest request an integration may send (an Alertmanager group of thousands of alerts). */
  intakeMaxBytes: number;
  /** Requests one integration may send per minute. */
  intakeRateLimit: number;
  /** Monitors the hub runs may reach its loopback, link-local and cloud-metadata addresses (off: a monitor is not a way in). */
  monitorAllowInternal: boolean;
  /** The dashboard's built files (served at /). */
  dashboardDir: string;
  /** At start, print a one-time link that signs the dashboard in as the admin (`pnpm start` turns it on). */
  signinLink: boolean;
  /** Live event streams (GET /v1/events) one token may hold at once. */
  eventStreamsPerToken: number;
  /** A comment on an idle event stream this often (proxies close silent connections). */
  eventStreamKeepAliveMs: number;
  /** Bytes waiting for an event stream's client past which it is disconnected. */
  eventStreamMaxBufferedBytes: number;
  /** Events a reconnecting stream is sent from where it left off; further back it is told to resync. */
  eventStreamMaxReplay: number;
}

export const DEFAULT_CONFIG: Readonly<HubConfig> = Object.freeze({
  port: 8080,
  host: '0.0.0.0',
  adminToken: null,
  dataDir: './data',
  databaseUrl: null,
  logLevel: 'info',
  maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes, // 1 MiB
  maxPayloadBytes: DEFAULT_LIMITS.maxPayloadBytes, // 4 MiB
  heartbeatIntervalS: 10, // told to agents in `welcome`
  pingIntervalMs: 15_000, // 15 s; two missed pongs terminate the connection
  authTimeoutMs: 10_000, // 10 s for a header-less connection to send its token
  badFramesPerMinute: 10, // more closes the connection with 4400
  maxUnauthenticated: 256, // header-less connections waiting for their first frame; more get 503
  flushIntervalMs: 0, // an alert, resolve or exec result waits this long for company when nothing is being written (0: written at the end of the event-loop turn)
  bulkIntervalMs: 100, // heartbeats, hellos and metric samples wait this long for company (nobody waits on them; fewer commits)
  hubName: null,
  healthPort: 0,
  maxBatchItems: 10_000, // rows that start a write at once; agents that flood are paused past 4x this waiting
  execDefaultTimeoutMs: 15_000, // 15 s
  execMaxTimeoutMs: 125_000, // 125 s
  dedupeRetentionDays: 30, // an agent replaying its outbox after a month away may store a repeat
  rulesFile: null,
  llmBaseUrl: 'https://openrouter.ai/api/v1',
  llmApiKey: null,
  llmModel: 'qwen/qwen-2.5-coder-32b-instruct',
  llmTimeoutMs: 30_000, // 30 s per attempt
  llmMaxRetries: 3, // on 429 and 5xx, with backoff
  analysisConcurrency: 2,
  analysisReuseS: 3600, // an hour
  redactionsFile: null,
  slackBotToken: null,
  slackSigningSecret: null,
  slackChannel: null,
  slackWebhookUrl: null,
  slackApiUrl: 'https://slack.com/api/',
  slackAllowedUsers: [],
  slackPaceMs: 1000, // Slack's posting limit: about one message per second per channel
  slackIgnoreS: 86_400, // 24 h
  alertsPerMinute: 120,
  bulkPerMinute: 120, // an agent sends ~10 a minute (a heartbeat every 10 s, metrics every 15 s)
  metricSamplesPerMinute: 240, // one sample per metrics message: 4 a minute at the default interval
  metricsRawHours: 48,
  metricsRetentionDays: 30,
  monitorResultsRawDays: 7,
  monitorResultsRetentionDays: 90,
  maxConnections: 16_000, // under the 20,000 open files a process may hold on these machines
  requestHeadersTimeoutMs: 10_000,
  apiRateLimit: 600,
  intakeMaxBytes: 16 * 1024 * 1024, // 16 MiB: ~10,000 Alertmanager alerts with their labels and annotations
  intakeRateLimit: 600,
  monitorAllowInternal: false,
  dashboardDir: DEFAULT_DASHBOARD_DIR,
  signinLink: false,
  eventStreamsPerToken: 10,
  eventStreamKeepAliveMs: 15_000,
  eventStreamMaxBufferedBytes: 1024 * 1024,
  eventStreamMaxReplay: 10_000,
});

type Rule = (value: unknown) => string | null;
const int = (min: number, max: number): Rule => (v) =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? null : `must be an integer from ${min} to ${max}`;
const nonEmpty: Rule = (v) => (typeof v === 'string' && v.length > 0 ? null : 'must be a non-empty string');
const nullableString = (check: Rule): Rule => (v) => (v === null ? null : check(v));

const RULES: { [K in keyof HubConfig]: Rule } = {
  port: int(0, 65535),
  host: nonEmpty,
  adminToken: nullableString((v) => (typeof v === 'string' && v.length >= 16 ? null : 'must be at least 16 characters')),
  dataDir: nonEmpty,
  databaseUrl: nullableString((v) =>
    typeof v === 'string' && /^postgres(ql)?:\/\//.test(v) ? null : 'must be a postgres:// or postgresql:// URL',
  ),
  logLevel: (v) => ((LOG_LEVELS as readonly unknown[]).includes(v) ? null : `must be one of ${LOG_LEVELS.join(', ')}`),
  maxFrameBytes: int(1024, 64 * 1024 * 1024),
  maxPayloadBytes: int(1024, 256 * 1024 * 1024),
  heartbeatIntervalS: int(1, 3600),
  pingIntervalMs: int(10, 3_600_000),
  authTimeoutMs: int(10, 600_000),
  badFramesPerMinute: int(0, 100_000),
  maxUnauthenticated: int(1, 1_000_000),
  flushIntervalMs: int(0, 60_000),
  bulkIntervalMs: int(0, 60_000),
  maxBatchItems: int(1, 1_000_000),
  healthPort: int(0, 65535),
  hubName: nullableString((v) => (typeof v === 'string' && /^[\x21-\x7e]{1,100}$/.test(v) ? null : 'must be 1 to 100 printable characters without spaces')),
  execDefaultTimeoutMs: int(1, 3_600_000),
  execMaxTimeoutMs: int(1, 3_600_000),
  dedupeRetentionDays: int(1, 3650),
  rulesFile: nullableString(nonEmpty),
  llmBaseUrl: (v) => (typeof v === 'string' && /^https?:\/\/\S+$/.test(v) ? null : 'must be an http:// or https:// URL'),
  llmApiKey: nullableString(nonEmpty),
  llmModel: nonEmpty,
  llmTimeoutMs: int(100, 600_000),
  llmMaxRetries: int(0, 10),
  analysisConcurrency: int(0, 64),
  analysisReuseS: int(0, 30 * 86_400),
  redactionsFile: nullableString(nonEmpty),
  slackBotToken: nullableString((v) => (typeof v === 'string' && /^xox[a-z]-\S+$/.test(v) ? null : 'must be a Slack bot token (xoxb-…)')),
  slackSigningSecret: nullableString((v) => (typeof v === 'string' && v.length >= 16 ? null : 'must be at least 16 characters')),
  slackChannel: nullableString((v) => (typeof v === 'string' && /^[#A-Za-z0-9_-]{1,80}$/.test(v) ? null : 'must be a channel id (C0123…) or #name')),
  slackWebhookUrl: nullableString((v) => (typeof v === 'string' && /^https?:\/\/\S+$/.test(v) ? null : 'must be an http(s) URL')),
  slackApiUrl: (v) => (typeof v === 'string' && /^https?:\/\/\S+\/$/.test(v) ? null : 'must be an http(s) URL ending in /'),
  slackAllowedUsers: (v) => (Array.isArray(v) && v.every((u) => typeof u === 'string' && /^[UW][A-Z0-9]{2,}$/.test(u)) ? null : 'must be Slack user ids (U…/W…), comma-separated'),
  slackPaceMs: int(0, 60_000),
  slackIgnoreS: int(60, 30 * 86_400),
  alertsPerMinute: int(1, 1_000_000),
  bulkPerMinute: int(1, 1_000_000),
  metricSamplesPerMinute: int(1, 10_000_000),
  metricsRawHours: int(1, 24 * 3650),
  metricsRetentionDays: int(1, 3650),
  monitorResultsRawDays: int(1, 3650),
  monitorResultsRetentionDays: int(1, 3650),
  maxConnections: int(1, 10_000_000),
  requestHeadersTimeoutMs: int(100, 600_000),
  apiRateLimit: int(1, 10_000_000),
  intakeMaxBytes: int(1024, 256 * 1024 * 1024),
  intakeRateLimit: int(1, 10_000_000),
  monitorAllowInternal: (v) => (typeof v === 'boolean' ? null : 'must be true or false'),
  dashboardDir: (v) => (typeof v === 'string' && v.length > 0 ? null : 'must be a directory path'),
  signinLink: (v) => (typeof v === 'boolean' ? null : 'must be true or false'),
  eventStreamsPerToken: int(1, 1000),
  eventStreamKeepAliveMs: int(10, 300_000),
  eventStreamMaxBufferedBytes: int(1024, 256 * 1024 * 1024),
  eventStreamMaxReplay: int(1, 1_000_000),
};

export class ConfigError extends StartupError {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(key, `invalid config ${key}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** Merge `overrides` over the defaults, reject unknown keys and bad values, and freeze. */
export function resolveConfig(overrides: Partial<HubConfig> = {}): Readonly<HubConfig> {
  for (const key of Object.keys(overrides)) {
    if (!Object.hasOwn(RULES, key)) throw new ConfigError(key, 'unknown key');
  }
  const config = { ...DEFAULT_CONFIG, ...overrides } as HubConfig;
  for (const [key, rule] of Object.entries(RULES)) {
    const problem = rule(config[key as keyof HubConfig]);
    if (problem) throw new ConfigError(key, problem);
  }
  const app = [config.slackBotToken, config.slackSigningSecret, config.slackChannel];
  if (app.some((v) => v !== null) && app.some((v) => v === null)) {
    throw new ConfigError('slackBotToken', 'SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SLACK_CHANNEL go together');
  }
  if (config.execDefaultTimeoutMs > config.execMaxTimeoutMs) {
    throw new ConfigError('execDefaultTimeoutMs', 'must not exceed execMaxTimeoutMs');
  }
  if (config.metricsRawHours > config.metricsRetentionDays * 24) {
    throw new ConfigError('metricsRawHours', 'must not exceed metricsRetentionDays (in hours)');
  }
  if (config.healthPort !== 0 && config.healthPort === config.port) {
    throw new ConfigError('healthPort', 'must differ from the main port (or be 0: none)');
  }
  if (config.monitorResultsRawDays > config.monitorResultsRetentionDays) {
    throw new ConfigError('monitorResultsRawDays', 'must not exceed monitorResultsRetentionDays');
  }
  return Object.freeze(config);
}

/** Environment variables the hub reads, and the config key each sets. */
export const ENV_KEYS = {
  OPSPILOT_PORT: 'port',
  OPSPILOT_HOST: 'host',
  OPSPILOT_ADMIN_TOKEN: 'adminToken',
  OPSPILOT_DATA_DIR: 'dataDir',
  DATABASE_URL: 'databaseUrl',
  OPSPILOT_LOG_LEVEL: 'logLevel',
  OPSPILOT_MAX_FRAME_BYTES: 'maxFrameBytes',
  OPSPILOT_MAX_PAYLOAD_BYTES: 'maxPayloadBytes',
  OPSPILOT_HEARTBEAT_INTERVAL_S: 'heartbeatIntervalS',
  OPSPILOT_DEDUPE_RETENTION_DAYS: 'dedupeRetentionDays',
  OPSPILOT_RULES_FILE: 'rulesFile',
  OPSPILOT_LLM_BASE_URL: 'llmBaseUrl',
  OPSPILOT_LLM_API_KEY: 'llmApiKey',
  OPSPILOT_LLM_MODEL: 'llmModel',
  OPSPILOT_ANALYSIS_REUSE_S: 'analysisReuseS',
  OPSPILOT_REDACTIONS_FILE: 'redactionsFile',
  SLACK_BOT_TOKEN: 'slackBotToken',
  SLACK_SIGNING_SECRET: 'slackSigningSecret',
  SLACK_CHANNEL: 'slackChannel',
  SLACK_WEBHOOK_URL: 'slackWebhookUrl',
  OPSPILOT_SLACK_API_URL: 'slackApiUrl',
  OPSPILOT_SLACK_ALLOWED_USERS: 'slackAllowedUsers',
  OPSPILOT_ALERTS_PER_MINUTE: 'alertsPerMinute',
  OPSPILOT_BULK_PER_MINUTE: 'bulkPerMinute',
  OPSPILOT_METRIC_SAMPLES_PER_MINUTE: 'metricSamplesPerMinute',
  OPSPILOT_METRICS_RAW_HOURS: 'metricsRawHours',
  OPSPILOT_METRICS_RETENTION_DAYS: 'metricsRetentionDays',
  OPSPILOT_MONITOR_RESULTS_RAW_DAYS: 'monitorResultsRawDays',
  OPSPILOT_MONITOR_RESULTS_RETENTION_DAYS: 'monitorResultsRetentionDays',
  OPSPILOT_MAX_CONNECTIONS: 'maxConnections',
  OPSPILOT_MAX_UNAUTHENTICATED: 'maxUnauthenticated',
  OPSPILOT_API_RATE_LIMIT: 'apiRateLimit',
  OPSPILOT_INTAKE_MAX_BYTES: 'intakeMaxBytes',
  OPSPILOT_INTAKE_RATE_LIMIT: 'intakeRateLimit',
  OPSPILOT_MONITOR_ALLOW_INTERNAL: 'monitorAllowInternal',
  OPSPILOT_EVENT_STREAMS_PER_TOKEN: 'eventStreamsPerToken',
  OPSPILOT_DASHBOARD_DIR: 'dashboardDir',
  OPSPILOT_SIGNIN_LINK: 'signinLink',
  OPSPILOT_FLUSH_INTERVAL_MS: 'flushIntervalMs',
  OPSPILOT_BULK_INTERVAL_MS: 'bulkIntervalMs',
  OPSPILOT_HUB_NAME: 'hubName',
  OPSPILOT_HEALTH_PORT: 'healthPort',
} as const satisfies Record<string, keyof HubConfig>;

// Every key whose default is a number is read as an integer.
const NUMERIC_KEYS = new Set((Object.keys(DEFAULT_CONFIG) as (keyof HubConfig)[]).filter((k) => typeof DEFAULT_CONFIG[k] === 'number'));

/** Read the hub's config from the environment; a bad value fails with the variable named. */
export function configFromEnv(env: NodeJS.ProcessEnv): Readonly<HubConfig> {
  const overrides: Record<string, unknown> = {};
  // The original OpsPilot's name for the key is accepted too.
  if (!env.OPSPILOT_LLM_API_KEY && env.OPENROUTER_KEY) overrides.llmApiKey = env.OPENROUTER_KEY;
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    if (NUMERIC_KEYS.has(key)) {
      const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
      if (!Number.isSafeInteger(n)) throw new ConfigError(name, `expected an integer, got ${JSON.stringify(raw)}`);
      overrides[key] = n;
    } else if (typeof DEFAULT_CONFIG[key] === 'boolean') {
      const v = raw.trim().toLowerCase();
      if (!['1', 'true', 'yes', '0', 'false', 'no'].includes(v)) throw new ConfigError(name, `expected true or false, got ${JSON.stringify(raw)}`);
      overrides[key] = ['1', 'true', 'yes'].includes(v);
    } else if (key === 'slackAllowedUsers') {
      overrides[key] = raw.split(',').map((u) => u.trim()).filter((u) => u.length > 0);
    } else if (key === 'slackApiUrl') {
      overrides[key] = raw.endsWith('/') ? raw : `${raw}/`;
    } else {
      overrides[key] = raw;
    }
  }
  try {
    return resolveConfig(overrides as Partial<HubConfig>);
  } catch (err) {
    if (err instanceof ConfigError) {
      const name = Object.entries(ENV_KEYS).find(([, k]) => k === err.key)?.[0] ?? err.key;
      // Never echo a token, a key or the database URL (it may hold a password) back.
      throw new ConfigError(name, err.message.replace(/^invalid config \S+: /, ''));
    }
    throw err;
  }
}
