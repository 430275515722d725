import { StartupError } from '../errors.ts';
import { readJsonArray } from '../config-file.ts';
import { LOG_HEAD, LOG_TAIL } from '../storage/incidents.ts';
import { builtinPattern, operatorPattern, PatternError, type TextPattern } from './patterns.ts';

export const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * A classification rule: data, not code. The first rule that matches an incident decides its
 * severity and category, and its name is stored on the incident. Every condition given must hold.
 */
export interface ClassificationRule {
  name: string;
  severity: Severity;
  category: string;
  /** Alert types it applies to (systemd, host, log, http, agent, ...); absent: any. */
  types?: readonly string[];
  /** Matched case-insensitively against the message, the unit status and the logs (clipped: see `scannedText`). */
  pattern?: TextPattern;
  /** The alert's exit code is one of these. */
  exitCodes?: readonly number[];
  /** Only when the same incident has repeated this often within this many seconds. */
  repeats?: { count: number; withinS: number };
  /** The alert's labels (an integration's alerts) include all of these, exactly. */
  labels?: Readonly<Record<string, string>>;
}

export interface IncidentFacts {
  type: string;
  message: string;
  logs?: string | null;
  status?: string | null;
  exitCode?: number | null;
  count: number;
  firstSeenAt: Date;
  lastSeenAt: Date;
  /** An integration's alert: its labels, and the sender's own severity (used when no rule matches). */
  labels?: Readonly<Record<string, string>>;
  senderSeverity?: Severity | null;
}

export interface Classification {
  severity: Severity;
  category: string;
  rule: string;
}

const r = (source: string) => builtinPattern(new RegExp(source, 'i'));

/** Where a host tells about itself: units, log files, containers, host checks. */
const HOST_TYPES = ['systemd', 'log', 'docker', 'host'] as const;
/** Where application signals (HTTP statuses, warnings, slow queries) mean something. */
const APP_TYPES = ['log', 'http'] as const;

/**
 * An HTTP status only where the text is shaped like HTTP: after a request line
 * (`GET /path`, an access log's `"GET /path HTTP/1.1" 502`), after `HTTP`/`HTTP/1.1`, or as a
 * status field (`status=502`, `"status":502`), never any number in a log line ("pid 503").
 */
const httpStatus = (codes: string, phrases: string) =>
  r(
    String.raw`\b(?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) \S{1,2048}(?: HTTP/[0-9.]{1,3})?"? (?:(?:returned|responded|answered|got|with) )?(?:${codes})\b` +
      String.raw`|\bHTTP(?:/[0-9.]{1,3})? (?:${codes})\b|\b(?:http_)?status(?:_code| code)?["']?\s{0,3}[=:]\s{0,3}["']?(?:${codes})\b` +
      (phrases ? `|${phrases}` : ''),
  );

/**
 * Built-in rules, most specific first: what a host tells about itself (repeated unit failures,
 * disk full, OOM, port in use, permissions, configuration, crashes, dependencies), then the
 * application signals of the original OpsPilot rules (database, 5xx, data loss, timeouts, ...).
 * Each names the alert types it applies to. No rule that applies to `systemd` is below `high`:
 * a unit failure is never downgraded by a word in its logs.
 */
export const BUILTIN_RULES: readonly ClassificationRule[] = [
  { name: 'agent_offline', severity: 'high', category: 'availability', types: ['agent'] },
  { name: 'journal_gap', severity: 'medium', category: 'monitoring', types: ['journal'] },
  { name: 'unit_failing_repeatedly', severity: 'critical', category: 'availability', types: ['systemd'], repeats: { count: 3, withinS: 600 } },
  // systemd gave up restarting it (StartLimitBurst= within StartLimitIntervalSec=).
  { name: 'unit_start_limit', severity: 'critical', category: 'availability', types: ['systemd'], pattern: r(String.raw`start request repeated too quickly|\bstart-limit-hit\b`) },
  { name: 'disk_full', severity: 'critical', category: 'disk', types: HOST_TYPES, pattern: r(String.raw`no space left on device|\bENOSPC\b|disk (?:is )?full|disk quota exceeded`) },
  {
    name: 'oom_kill',
    severity: 'critical',
    category: 'memory',
    types: HOST_TYPES,
    pattern: r(String.raw`out of memory|\boom[-_ ]?kill|killed by the oom killer|\bENOMEM\b|cannot allocate memory|heap limit allocation failed`),
  },
  { name: 'address_in_use', severity: 'high', category: 'network', types: HOST_TYPES, pattern: r(String.raw`address already in use|\bEADDRINUSE\b`) },
  { name: 'permission_denied', severity: 'high', category: 'permissions', types: HOST_TYPES, pattern: r(String.raw`permission denied|\bEACCES\b|operation not permitted|\bEPERM\b`) },
  {
    name: 'config_syntax_error',
    severity: 'high',
    category: 'configuration',
    types: HOST_TYPES,
    pattern: r(String.raw`syntax error|configuration (?:file )?test failed|invalid (?:configuration|config\b)|unknown directive|\[emerg\] unexpected|parse error|failed to parse (?:config|configuration)`),
  },
  // 127: the shell found no such command; 203: systemd could not execute ExecStart= (203/EXEC).
  { name: 'executable_not_found', severity: 'high', category: 'configuration', types: ['systemd'], exitCodes: [127, 203] },
  { name: 'segfault', severity: 'critical', category: 'crash', types: HOST_TYPES, pattern: r(String.raw`segmentation fault|\bsegfault\b|core dumped|\bSIGSEGV\b|\bSEGV\b|signal 11\b|result 'core-dump'`) },
  { name: 'dependency_failed', severity: 'high', category: 'dependency', types: HOST_TYPES, pattern: r(String.raw`dependency failed|dependency job [^\n]{0,256} failed|result 'dependency'`) },
  {
    name: 'database_connection',
    severity: 'critical',
    category: 'database',
    types: HOST_TYPES,
    pattern: r(
      String.raw`(?:could not connect|can't connect|cannot connect|unable to connect|connection refused|connection failed|too many connections)[^\n]{0,80}(?:database|postgres|mysql|mariadb|mongo|redis)|(?:database|postgres|mysql|mariadb|mongo|redis)[^\n]{0,80}(?:could not connect|connection refused|connection failed|too many connections)|:(?:5432|3306|27017|6379)\b[^\n]{0,40}ECONNREFUSED|ECONNREFUSED[^\n]{0,40}:(?:5432|3306|27017|6379)\b`,
    ),
  },
  { name: 'http_502_503', severity: 'critical', category: 'http', types: APP_TYPES, pattern: httpStatus('502|503', 'bad gateway|service unavailable') },
  { name: 'data_loss', severity: 'critical', category: 'data', types: HOST_TYPES, pattern: r(String.raw`data loss|data corruption|corrupt(?:ed)? (?:data|index|table|page|block)`) },
  { name: 'timeout', severity: 'high', category: 'timeout', types: [...HOST_TYPES, 'http'], pattern: r(String.raw`timed out|\btimeout\b|\bETIMEDOUT\b|deadline exceeded`) },
  { name: 'http_500', severity: 'high', category: 'http', types: APP_TYPES, pattern: httpStatus('500', 'internal server error') },
  { name: 'javascript_error', severity: 'high', category: 'application', types: HOST_TYPES, pattern: builtinPattern(/\b(?:TypeError|ReferenceError)\b/) },
  {
    name: 'network_error',
    severity: 'high',
    category: 'network',
    types: [...HOST_TYPES, 'http'],
    pattern: r(String.raw`\bECONNRESET\b|\bECONNREFUSED\b|\bEHOSTUNREACH\b|\bENETUNREACH\b|network (?:is )?unreachable|connection reset|socket hang up|\bENOTFOUND\b|getaddrinfo`),
  },
  { name: 'slow_query', severity: 'medium', category: 'performance', types: APP_TYPES, pattern: r(String.raw`slow query|query took \d|duration: \d{4,}(?:\.\d+)? ms`) },
  { name: 'http_429', severity: 'medium', category: 'rate_limit', types: APP_TYPES, pattern: httpStatus('429', 'too many requests|rate limit(?:ed| exceeded)') },
  { name: 'deprecation', severity: 'medium', category: 'maintenance', types: APP_TYPES, pattern: r(String.raw`deprecat`) },
  { name: 'warning', severity: 'low', category: 'warning', types: APP_TYPES, pattern: r(String.raw`\bwarn(?:ing)?\b`) },
  { name: 'http_404', severity: 'low', category: 'http', types: APP_TYPES, pattern: httpStatus('404', '') },
  // Nothing more specific: a failed unit or a host threshold still wants a person soon.
  { name: 'service_failed', severity: 'high', category: 'service', types: ['systemd'] },
  { name: 'host_threshold', severity: 'high', category: 'resources', types: ['host'] },
  { name: 'unclassified', severity: 'medium', category: 'unknown' },
];

const MAX_FIELD = 8 * 1024;
const RANK: Record<Severity, number> = { critical: 0, high: 1, medium: 2, low: 3 };

/**
 * What rule patterns read: the message and status (8 KiB each) and at most 64 KiB of the logs,
 * their first 16 KiB and last 48 KiB (where a crash says why). Clipped before anything scans it,
 * so a rule's cost has a ceiling whatever an agent sends.
 */
export function scannedText(facts: Pick<IncidentFacts, 'message' | 'status' | 'logs'>): string {
  const logs = facts.logs ?? '';
  const clipped = logs.length <= LOG_HEAD + LOG_TAIL ? logs : `${logs.slice(0, LOG_HEAD)}\n${logs.slice(-LOG_TAIL)}`;
  return [facts.message.slice(0, MAX_FIELD), (facts.status ?? '').slice(0, MAX_FIELD), clipped].join('\n');
}

export function classify(rules: readonly ClassificationRule[], facts: IncidentFacts): Classification {
  const text = scannedText(facts);
  for (const [i, rule] of rules.entries()) {
    // An alert from another tool: its sender's severity outranks the built-in rules (written for
    // what hosts say about themselves); they may still name the category.
    if (facts.senderSeverity && BUILTIN.has(rule)) {
      const known = rules.slice(i).find((r) => ruleHolds(r, facts, text));
      return { severity: facts.senderSeverity, category: known?.category ?? 'unknown', rule: 'sender' };
    }
    if (ruleHolds(rule, facts, text)) return { severity: rule.severity, category: rule.category, rule: rule.name };
  }
  if (facts.senderSeverity) return { severity: facts.senderSeverity, category: 'unknown', rule: 'sender' };
  return { severity: 'medium', category: 'unknown', rule: 'unclassified' };
}

const BUILTIN: ReadonlySet<ClassificationRule> = new Set(BUILTIN_RULES);

/** Every condition the rule gives holds for these facts (`text` is their scanned text). */
function ruleHolds(rule: ClassificationRule, facts: IncidentFacts, text: string): boolean {
  if (rule.types && !rule.types.includes(facts.type)) return false;
  // A unit failure wants a person soon: only a rule written for units may say otherwise.
  if (facts.type === 'systemd' && !rule.types?.includes('systemd') && RANK[rule.severity] > RANK.high) return false;
  if (rule.exitCodes && (facts.exitCode === undefined || facts.exitCode === null || !rule.exitCodes.includes(facts.exitCode))) return false;
  if (rule.repeats) {
    const spanS = (facts.lastSeenAt.getTime() - facts.firstSeenAt.getTime()) / 1000;
    if (facts.count < rule.repeats.count || spanS > rule.repeats.withinS) return false;
  }
  if (rule.labels && !Object.entries(rule.labels).every(([k, v]) => facts.labels?.[k] === v)) return false;
  if (rule.pattern && !rule.pattern.test(text)) return false;
  return true;
}

export class RulesFileError extends StartupError {
  constructor(file: string, where: string, reason: string) {
    super('OPSPILOT_RULES_FILE', `rules file ${file}: ${where}: ${reason}`);
    this.name = 'RulesFileError';
  }
}

/**
 * Operator rules (OPSPILOT_RULES_FILE): a JSON array of
 * `{name, severity, category, types?, pattern?, exit_codes?, repeats?: {count, within_s}, labels?}`, tried before the
 * built-in ones, in order.
 */
export function loadRules(file: string | null): ClassificationRule[] {
  if (!file) return [...BUILTIN_RULES];
  const raw = readJsonArray(file, 'rules', (problem) => new RulesFileError(file, 'file', problem));
  const names = new Set<string>();
  const custom = raw.map((item, i): ClassificationRule => {
    const at = `[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new RulesFileError(file, at, 'must be an object');
    const o = item as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (!['name', 'severity', 'category', 'types', 'pattern', 'exit_codes', 'repeats', 'labels'].includes(key)) throw new RulesFileError(file, `${at}.${key}`, 'unknown key');
    }
    if (typeof o.name !== 'string' || !/^[a-z0-9_.-]{1,64}$/i.test(o.name)) throw new RulesFileError(file, `${at}.name`, 'must be 1-64 characters of [A-Za-z0-9_.-]');
    if (names.has(o.name)) throw new RulesFileError(file, `${at}.name`, `"${o.name}" is used twice`);
    names.add(o.name);
    if (!(SEVERITIES as readonly unknown[]).includes(o.severity)) throw new RulesFileError(file, `${at}.severity`, `must be one of ${SEVERITIES.join(', ')}`);
    if (typeof o.category !== 'string' || o.category.length === 0 || o.category.length > 64) throw new RulesFileError(file, `${at}.category`, 'must be a short string');
    const rule: ClassificationRule = { name: o.name, severity: o.severity as Severity, category: o.category };
    if (o.types !== undefined) {
      if (!Array.isArray(o.types) || !o.types.every((t) => typeof t === 'string')) throw new RulesFileError(file, `${at}.types`, 'must be an array of alert types');
      rule.types = o.types as string[];
    }
    if (o.pattern !== undefined) {
      if (typeof o.pattern !== 'string') throw new RulesFileError(file, `${at}.pattern`, 'must be a regular expression string');
      try {
        rule.pattern = operatorPattern(o.pattern, { caseInsensitive: true });
      } catch (err) {
        if (!(err instanceof PatternError)) throw err;
        throw new RulesFileError(file, `${at}.pattern`, err.message);
      }
    }
    if (o.exit_codes !== undefined) {
      if (!Array.isArray(o.exit_codes) || o.exit_codes.length === 0 || !o.exit_codes.every((c) => Number.isInteger(c) && c >= 0 && c <= 255)) {
        throw new RulesFileError(file, `${at}.exit_codes`, 'must be a non-empty array of exit codes (0-255)');
      }
      rule.exitCodes = o.exit_codes as number[];
    }
    if (o.repeats !== undefined) {
      const rep = o.repeats as Record<string, unknown>;
      if (typeof rep !== 'object' || rep === null || !Number.isInteger(rep.count) || !Number.isInteger(rep.within_s) || (rep.count as number) < 2 || (rep.within_s as number) < 1) {
        throw new RulesFileError(file, `${at}.repeats`, 'must be {count: integer >= 2, within_s: integer >= 1}');
      }
      rule.repeats = { count: rep.count as number, withinS: rep.within_s as number };
    }
    if (o.labels !== undefined) {
      const labels = o.labels as Record<string, unknown>;
      const entries = typeof labels === 'object' && labels !== null && !Array.isArray(labels) ? Object.entries(labels) : [];
      if (entries.length === 0 || entries.length > 32 || !entries.every(([k, v]) => k.length > 0 && k.length <= 128 && typeof v === 'string' && v.length <= 1024)) {
        throw new RulesFileError(file, `${at}.labels`, 'must be an object of 1-32 label names and string values');
      }
      rule.labels = Object.fromEntries(entries) as Record<string, string>;
    }
    if (!rule.pattern && !rule.types && !rule.repeats && !rule.exitCodes && !rule.labels) throw new RulesFileError(file, at, 'needs a pattern, types, exit_codes, repeats or labels (it would match everything)');
    return rule;
  });
  return [...custom, ...BUILTIN_RULES];
}
