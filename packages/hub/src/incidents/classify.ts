import { readJsonArray } from '../config-file.ts';

export const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * A classification rule: data, not code. The first rule that matches an incident decides its
 * severity and category, and its name is stored on the incident.
 */
export interface ClassificationRule {
  name: string;
  severity: Severity;
  category: string;
  /** Alert types it applies to (systemd, host, log, agent, ...); absent: any. */
  types?: readonly string[];
  /** Matched case-insensitively against the message, the unit status and the logs. */
  pattern?: RegExp;
  /** Only when the same incident has repeated this often within this many seconds. */
  repeats?: { count: number; withinS: number };
}

export interface IncidentFacts {
  type: string;
  message: string;
  logs?: string | null;
  status?: string | null;
  count: number;
  firstSeenAt: Date;
  lastSeenAt: Date;
}

export interface Classification {
  severity: Severity;
  category: string;
  rule: string;
}

const r = (source: string) => new RegExp(source, 'i');

/**
 * Built-in rules, most specific first: what a host tells about itself (repeated unit failures,
 * disk full, OOM, port in use, permissions, configuration, crashes, dependencies), then the
 * application signals of the original OpsPilot rules (database, 5xx, data loss, timeouts, ...).
 */
export const BUILTIN_RULES: readonly ClassificationRule[] = [
  { name: 'agent_offline', severity: 'high', category: 'availability', types: ['agent'] },
  { name: 'unit_failing_repeatedly', severity: 'critical', category: 'availability', types: ['systemd'], repeats: { count: 3, withinS: 600 } },
  { name: 'disk_full', severity: 'critical', category: 'disk', pattern: r(String.raw`no space left on device|\bENOSPC\b|disk (?:is )?full|disk quota exceeded`) },
  { name: 'oom_kill', severity: 'critical', category: 'memory', pattern: r(String.raw`out of memory|\boom[-_ ]?kill|killed by the oom killer|\bENOMEM\b|cannot allocate memory`) },
  { name: 'address_in_use', severity: 'high', category: 'network', pattern: r(String.raw`address already in use|\bEADDRINUSE\b`) },
  { name: 'permission_denied', severity: 'high', category: 'permissions', pattern: r(String.raw`permission denied|\bEACCES\b|operation not permitted|\bEPERM\b`) },
  {
    name: 'config_syntax_error',
    severity: 'high',
    category: 'configuration',
    pattern: r(String.raw`syntax error|configuration (?:file )?test failed|invalid (?:configuration|config\b)|unknown directive|\[emerg\] unexpected|parse error|failed to parse (?:config|configuration)`),
  },
  { name: 'segfault', severity: 'critical', category: 'crash', pattern: r(String.raw`segmentation fault|\bsegfault\b|core dumped|\bSIGSEGV\b|signal 11\b|result 'core-dump'`) },
  { name: 'dependency_failed', severity: 'high', category: 'dependency', pattern: r(String.raw`dependency failed|dependency job .* failed|result 'dependency'`) },
  {
    name: 'database_connection',
    severity: 'critical',
    category: 'database',
    pattern: r(
      String.raw`(?:could not connect|can't connect|cannot connect|unable to connect|connection refused|connection failed|too many connections)[^\n]{0,80}(?:database|postgres|mysql|mariadb|mongo|redis)|(?:database|postgres|mysql|mariadb|mongo|redis)[^\n]{0,80}(?:could not connect|connection refused|connection failed|too many connections)|:(?:5432|3306|27017|6379)\b[^\n]{0,40}ECONNREFUSED|ECONNREFUSED[^\n]{0,40}:(?:5432|3306|27017|6379)\b`,
    ),
  },
  { name: 'http_502_503', severity: 'critical', category: 'http', pattern: r(String.raw`\b50[23]\b|bad gateway|service unavailable`) },
  { name: 'data_loss', severity: 'critical', category: 'data', pattern: r(String.raw`data loss|data corruption|corrupt(?:ed)? (?:data|index|table|page|block)`) },
  { name: 'timeout', severity: 'high', category: 'timeout', pattern: r(String.raw`timed out|\btimeout\b|\bETIMEDOUT\b|deadline exceeded`) },
  { name: 'http_500', severity: 'high', category: 'http', pattern: r(String.raw`\b500\b|internal server error`) },
  { name: 'javascript_error', severity: 'high', category: 'application', pattern: /\b(?:TypeError|ReferenceError)\b/ },
  {
    name: 'network_error',
    severity: 'high',
    category: 'network',
    pattern: r(String.raw`\bECONNRESET\b|\bECONNREFUSED\b|\bEHOSTUNREACH\b|\bENETUNREACH\b|network (?:is )?unreachable|connection reset|socket hang up|\bENOTFOUND\b|getaddrinfo`),
  },
  { name: 'slow_query', severity: 'medium', category: 'performance', pattern: r(String.raw`slow query|query took \d|duration: \d{4,}(?:\.\d+)? ms`) },
  { name: 'http_429', severity: 'medium', category: 'rate_limit', pattern: r(String.raw`\b429\b|too many requests|rate limit`) },
  { name: 'deprecation', severity: 'medium', category: 'maintenance', pattern: r(String.raw`deprecat`) },
  { name: 'warning', severity: 'low', category: 'warning', pattern: r(String.raw`\bwarn(?:ing)?\b`) },
  { name: 'http_404', severity: 'low', category: 'http', pattern: r(String.raw`\b404\b|not found`) },
  // Nothing more specific: a failed unit or a host threshold still wants a person soon.
  { name: 'service_failed', severity: 'high', category: 'service', types: ['systemd'] },
  { name: 'host_threshold', severity: 'high', category: 'resources', types: ['host'] },
  { name: 'unclassified', severity: 'medium', category: 'unknown' },
];

const MAX_TEXT = 256 * 1024; // rules read the first 256 KiB of the logs

export function classify(rules: readonly ClassificationRule[], facts: IncidentFacts): Classification {
  const text = [facts.message, facts.status ?? '', (facts.logs ?? '').slice(0, MAX_TEXT)].join('\n');
  for (const rule of rules) {
    if (rule.types && !rule.types.includes(facts.type)) continue;
    if (rule.repeats) {
      const spanS = (facts.lastSeenAt.getTime() - facts.firstSeenAt.getTime()) / 1000;
      if (facts.count < rule.repeats.count || spanS > rule.repeats.withinS) continue;
    }
    if (rule.pattern && !rule.pattern.test(text)) continue;
    return { severity: rule.severity, category: rule.category, rule: rule.name };
  }
  return { severity: 'medium', category: 'unknown', rule: 'unclassified' };
}

export class RulesFileError extends Error {
  constructor(file: string, where: string, reason: string) {
    super(`rules file ${file}: ${where}: ${reason}`);
    this.name = 'RulesFileError';
  }
}

/**
 * Operator rules (OPSPILOT_RULES_FILE): a JSON array of
 * `{name, severity, category, types?, pattern?, repeats?: {count, within_s}}`, tried before the
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
      if (!['name', 'severity', 'category', 'types', 'pattern', 'repeats'].includes(key)) throw new RulesFileError(file, `${at}.${key}`, 'unknown key');
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
        rule.pattern = new RegExp(o.pattern, 'i');
      } catch (err) {
        throw new RulesFileError(file, `${at}.pattern`, (err as Error).message);
      }
    }
    if (o.repeats !== undefined) {
      const rep = o.repeats as Record<string, unknown>;
      if (typeof rep !== 'object' || rep === null || !Number.isInteger(rep.count) || !Number.isInteger(rep.within_s) || (rep.count as number) < 2 || (rep.within_s as number) < 1) {
        throw new RulesFileError(file, `${at}.repeats`, 'must be {count: integer >= 2, within_s: integer >= 1}');
      }
      rule.repeats = { count: rep.count as number, withinS: rep.within_s as number };
    }
    if (!rule.pattern && !rule.types && !rule.repeats) throw new RulesFileError(file, at, 'needs a pattern, types or repeats (it would match everything)');
    return rule;
  });
  return [...custom, ...BUILTIN_RULES];
}
