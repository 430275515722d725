import { createHash } from 'node:crypto';
import type { ExternalAlert } from '../storage/external-alerts.ts';

/**
 * What every sender's format is read into, and the bounds on it. A reader never throws for one
 * bad alert in a batch: that alert is skipped with its reason, the others are taken. A payload
 * that is not the sender's format at all is an IntakeFormatError (400, nothing kept).
 */
export interface ReadAlerts {
  alerts: ExternalAlert[];
  /** Alerts skipped (by their position in the payload), and why. */
  errors: { alert: number; error: string }[];
}

export class IntakeFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntakeFormatError';
  }
}

export const LIMITS = {
  key: 255,
  title: 1024,
  details: 64 * 1024,
  labels: 64,
  labelName: 128,
  labelValue: 1024,
  service: 256,
  host: 253,
} as const;

export type Json = Record<string, unknown>;
export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Text any store can keep: a NUL or a lone surrogate (which PostgreSQL refuses) becomes U+FFFD,
 * so one odd character costs that character, never the delivery.
 */
export function storable(s: string): string {
  return s.replace(UNSTORABLE, '\uFFFD');
}
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** A string field, trimmed to `max` characters; undefined when absent, empty or not a string. */
export function text(v: unknown, max: number): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = storable(v.trim());
  if (t.length === 0) return undefined;
  return t.length <= max ? t : `${t.slice(0, max - 1)}…`;
}

/** A sender's labels: string values only, at most 64, names and values bounded. */
export function labelsOf(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObject(v)) return out;
  let n = 0;
  for (const [k, raw] of Object.entries(v)) {
    if (n >= LIMITS.labels) break;
    if (k.length === 0 || k.length > LIMITS.labelName) continue;
    const value = typeof raw === 'string' ? storable(raw) : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined;
    if (value === undefined) continue;
    out[storable(k)] = value.length <= LIMITS.labelValue ? value : value.slice(0, LIMITS.labelValue);
    n++;
  }
  return out;
}

/** Labels the integration adds, under the alert's own. */
export function withLabels(integration: Record<string, string>, own: Record<string, string>): Record<string, string> {
  return { ...integration, ...own };
}

const SEVERITY_WORDS: Record<string, ExternalAlert['severity']> = {
  critical: 'critical',
  crit: 'critical',
  fatal: 'critical',
  emergency: 'critical',
  page: 'critical',
  p1: 'critical',
  disaster: 'critical',
  error: 'high',
  high: 'high',
  major: 'high',
  p2: 'high',
  warning: 'medium',
  warn: 'medium',
  medium: 'medium',
  average: 'medium',
  p3: 'medium',
  info: 'low',
  informational: 'low',
  low: 'low',
  minor: 'low',
  debug: 'low',
  none: 'low',
  p4: 'low',
  p5: 'low',
};

/** A sender's severity word (Alertmanager's `severity` label, Events v2, Sentry's level) as OpsPilot's. */
export function severityOf(v: unknown): ExternalAlert['severity'] {
  return typeof v === 'string' ? SEVERITY_WORDS[v.trim().toLowerCase()] : undefined;
}

/**
 * The host an alert names: the first of the integration's host labels present, as a host name
 * (Prometheus's `instance` is `host:port`; a URL's host is taken from it).
 */
export function hostOf(labels: Record<string, string>, hostLabels: readonly string[]): string | undefined {
  for (const name of hostLabels) {
    const h = hostName(labels[name]);
    if (h) return h;
  }
  return undefined;
}

export function hostName(v: string | undefined): string | undefined {
  if (!v) return undefined;
  let h = v.trim();
  if (/^[a-z][a-z0-9+.-]{0,20}:\/\//i.test(h)) {
    try {
      h = new URL(h).hostname;
    } catch {
      return undefined;
    }
  }
  if (h.startsWith('[')) h = h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined); // [::1]:9100
  else if (h.split(':').length === 2) h = h.split(':')[0]!; // host:port (an IPv6 address has more colons)
  return /^[A-Za-z0-9_.:-]{1,253}$/.test(h) ? h : undefined;
}

/** A stable key for an alert whose sender gave none: the SHA-256 of what identifies it. */
export function keyOf(...parts: (string | undefined)[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

/** Extra text as the incident's logs: annotations and details, bounded. */
export function detailsOf(lines: (string | undefined)[]): string | undefined {
  const t = lines.filter((l): l is string => typeof l === 'string' && l.length > 0).join('\n');
  if (!t) return undefined;
  return t.length <= LIMITS.details ? t : `${t.slice(0, LIMITS.details - 1)}…`;
}

/** A sender's `links` (`[{href, text}]`): at most 10, bounded, those with an href. */
export function linksOf(v: unknown): { href: string; text?: string }[] {
  if (!Array.isArray(v)) return [];
  return v
    .slice(0, 10)
    .filter(isObject)
    .map((l) => ({ href: text(l.href, 2048), text: text(l.text, 256) }))
    .filter((l): l is { href: string; text: string | undefined } => l.href !== undefined)
    .map((l) => (l.text ? { href: l.href, text: l.text } : { href: l.href }));
}
