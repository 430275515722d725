import type { ExternalAlert } from '../storage/external-alerts.ts';
import type { ReaderOptions } from './alertmanager.ts';
import { IntakeFormatError, LIMITS, detailsOf, hostName, hostOf, isObject, keyOf, labelsOf, linksOf, severityOf, text, withLabels, type ReadAlerts } from './normalize.ts';

const MAX_ALERTS = 1000;

/**
 * OpsPilot's own shape for scripts: `{dedup_key?, status: firing|resolved, title, message?,
 * severity?, service?, host?, labels?, links?, occurred_at?}`, one object or a list. Without a
 * dedup_key, the title, service and host are the key: the same alert sent again is a repeat.
 */
export function readGeneric(body: unknown, opts: ReaderOptions): ReadAlerts {
  const items = Array.isArray(body) ? body : isObject(body) ? [body] : null;
  if (!items) throw new IntakeFormatError('the body is not a JSON object or a list of them');
  if (items.length === 0) throw new IntakeFormatError('an empty list');
  if (items.length > MAX_ALERTS) throw new IntakeFormatError(`${items.length} alerts in one request; at most ${MAX_ALERTS}`);
  const out: ReadAlerts = { alerts: [], errors: [] };
  items.forEach((a: unknown, i: number) => {
    if (!isObject(a)) return out.errors.push({ alert: i, error: 'not an object' });
    const title = text(a.title, LIMITS.title);
    if (!title) return out.errors.push({ alert: i, error: '"title" is required (a non-empty string)' });
    if (a.status !== undefined && a.status !== 'firing' && a.status !== 'resolved') return out.errors.push({ alert: i, error: '"status" is firing or resolved' });
    if (a.dedup_key !== undefined && (typeof a.dedup_key !== 'string' || a.dedup_key.length === 0 || a.dedup_key.length > LIMITS.key)) {
      return out.errors.push({ alert: i, error: `"dedup_key" is a string of 1-${LIMITS.key} characters` });
    }
    const labels = withLabels(opts.labels, labelsOf(a.labels));
    const service = text(a.service, LIMITS.service);
    const host = hostName(text(a.host, LIMITS.host)) ?? hostOf(labels, opts.hostLabels);
    const alert: ExternalAlert = {
      key: (a.dedup_key as string | undefined) ?? keyOf(title, service, host),
      status: a.status === 'resolved' ? 'resolved' : 'firing',
      title,
      labels,
      // Sent again while it fires: the same firing, unless it says when this one happened.
      occurrence: text(a.occurred_at, 64) ?? 'firing',
    };
    const details = detailsOf([text(a.message, LIMITS.details)]);
    if (details) alert.details = details;
    const severity = severityOf(a.severity);
    if (severity) alert.severity = severity;
    if (service) alert.service = service;
    if (host) alert.host = host;
    const context: Record<string, unknown> = {};
    const occurred = text(a.occurred_at, 64);
    if (occurred) context.occurred_at = occurred;
    const links = linksOf(a.links);
    if (links.length) context.links = links;
    if (Object.keys(context).length) alert.context = context;
    out.alerts.push(alert);
  });
  return out;
}
