import type { ExternalAlert } from '../storage/external-alerts.ts';
import { IntakeFormatError, LIMITS, detailsOf, hostOf, isObject, keyOf, labelsOf, severityOf, text, withLabels, type ReadAlerts } from './normalize.ts';

/** Alertmanager's "alertname" and friends: where a service's name is usually found. */
const SERVICE_LABELS = ['service', 'job', 'app', 'application', 'container'] as const;
/** At most this many alerts in one notification (a group of thousands is taken in one request). */
export const MAX_ALERTS = 20_000;

export interface ReaderOptions {
  labels: Record<string, string>;
  hostLabels: readonly string[];
}

/**
 * Prometheus Alertmanager's webhook (`version: "4"`), and Grafana's webhook contact point, which
 * sends the same shape (`version: "1"`, with `state`, `ruleUID`, `values`… added). Each alert's
 * own `status` counts, not the group's; its `fingerprint` is the key; `startsAt` tells a new
 * firing from the same one sent again.
 */
export function readAlertmanager(body: unknown, opts: ReaderOptions): ReadAlerts {
  if (!isObject(body)) throw new IntakeFormatError('the body is not a JSON object (an Alertmanager or Grafana webhook notification)');
  if (!Array.isArray(body.alerts)) throw new IntakeFormatError('no "alerts" list: not an Alertmanager or Grafana webhook notification');
  if (body.alerts.length > MAX_ALERTS) throw new IntakeFormatError(`${body.alerts.length} alerts in one notification; at most ${MAX_ALERTS}`);
  const groupStatus = body.status === 'resolved' ? 'resolved' : 'firing';
  const common = labelsOf(body.commonLabels);
  const out: ReadAlerts = { alerts: [], errors: [] };
  body.alerts.forEach((a: unknown, i: number) => {
    if (!isObject(a)) return out.errors.push({ alert: i, error: 'not an object' });
    const labels = withLabels(opts.labels, { ...common, ...labelsOf(a.labels) });
    const annotations = labelsOf(a.annotations);
    const status = a.status === 'resolved' ? 'resolved' : a.status === 'firing' ? 'firing' : groupStatus;
    const name = text(labels.alertname, 256) ?? text(body.title, 256);
    const summary = text(annotations.summary, LIMITS.title) ?? text(a.valueString, LIMITS.title);
    if (!name && !summary) return out.errors.push({ alert: i, error: 'no alertname label and no summary' });
    const fingerprint = text(a.fingerprint, LIMITS.key);
    const startsAt = text(a.startsAt, 64);
    const alert: ExternalAlert = {
      key: fingerprint ?? keyOf(...Object.entries(a.labels && isObject(a.labels) ? labelsOf(a.labels) : labels).sort().flat()),
      status,
      title: text(name && summary ? `${name}: ${summary}` : (name ?? summary), LIMITS.title)!,
      labels,
    };
    const details = detailsOf([annotations.description, annotations.message, ...Object.entries(annotations).filter(([k]) => !['summary', 'description', 'message'].includes(k)).map(([k, v]) => `${k}: ${v}`)]);
    if (details) alert.details = details;
    const severity = severityOf(labels.severity) ?? severityOf(labels.priority);
    if (severity) alert.severity = severity;
    const service = SERVICE_LABELS.map((k) => text(labels[k], LIMITS.service)).find(Boolean);
    if (service) alert.service = service;
    const host = hostOf(labels, opts.hostLabels);
    if (host) alert.host = host;
    if (startsAt && !startsAt.startsWith('0001-')) alert.occurrence = startsAt;
    const context: Record<string, unknown> = {};
    for (const [k, field] of [
      ['generator_url', 'generatorURL'],
      ['starts_at', 'startsAt'],
      ['ends_at', 'endsAt'],
      ['dashboard_url', 'dashboardURL'],
      ['panel_url', 'panelURL'],
      ['silence_url', 'silenceURL'],
      ['rule_uid', 'ruleUID'],
      ['value', 'valueString'],
    ] as const) {
      const v = text(a[field], 2048);
      if (v && !(field === 'endsAt' && v.startsWith('0001-'))) context[k] = v;
    }
    const external = text(body.externalURL, 2048);
    if (external) context.external_url = external;
    if (Object.keys(annotations).length) context.annotations = annotations;
    if (Object.keys(context).length) alert.context = context;
    out.alerts.push(alert);
  });
  return out;
}
