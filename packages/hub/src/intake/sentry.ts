import type { ExternalAlert } from '../storage/external-alerts.ts';
import type { ReaderOptions } from './alertmanager.ts';
import { IntakeFormatError, LIMITS, detailsOf, hostName, isObject, labelsOf, severityOf, text, withLabels, type Json, type ReadAlerts } from './normalize.ts';

/** Sentry's levels, as OpsPilot's severities. */
const LEVELS: Record<string, ExternalAlert['severity']> = { fatal: 'critical', error: 'high', warning: 'medium', info: 'low', debug: 'low' };
const MAX_FRAMES = 30;

/**
 * Sentry's integration-platform webhooks, by the `Sentry-Hook-Resource` header: an issue alert
 * (`event_alert`), an issue created, resolved or unresolved (`issue`), a metric alert
 * (`metric_alert`) and an error (`error`). An issue is keyed by its id, so its alert, its
 * errors and its resolution land on one incident. Other resources (installation, comment) and
 * actions that do not change whether it is firing (assigned, archived) are taken and change
 * nothing.
 */
export function readSentry(body: unknown, opts: ReaderOptions, resource: string | undefined): ReadAlerts {
  if (!isObject(body)) throw new IntakeFormatError('the body is not a JSON object (a Sentry webhook)');
  if (!isObject(body.data)) throw new IntakeFormatError('no "data" object: not a Sentry integration-platform webhook');
  const action = typeof body.action === 'string' ? body.action : '';
  const data = body.data;
  const none: ReadAlerts = { alerts: [], errors: [] };
  switch (resource) {
    case 'event_alert':
    case 'error': {
      const event = isObject(data.event) ? data.event : isObject(data.error) ? data.error : null;
      if (!event) throw new IntakeFormatError(`no data.${resource === 'error' ? 'error' : 'event'} object`);
      const alert = fromEvent(event, opts, text(data.triggered_rule, 256));
      return alert ? { alerts: [alert], errors: [] } : { alerts: [], errors: [{ alert: 0, error: 'the event has no issue_id' }] };
    }
    case 'issue': {
      const issue = isObject(data.issue) ? data.issue : null;
      if (!issue) throw new IntakeFormatError('no data.issue object');
      const id = idOf(issue.id);
      if (!id) return { alerts: [], errors: [{ alert: 0, error: 'the issue has no id' }] };
      if (action !== 'created' && action !== 'unresolved' && action !== 'resolved') return none;
      const project = isObject(issue.project) ? issue.project : {};
      const labels = withLabels(opts.labels, labelsOf({ project: project.slug ?? project.name, level: issue.level, short_id: issue.shortId }));
      const alert: ExternalAlert = {
        key: `issue:${id}`,
        status: action === 'resolved' ? 'resolved' : 'firing',
        title: text(issue.title, LIMITS.title) ?? `Sentry issue ${id}`,
        labels,
      };
      const severity = LEVELS[String(issue.level)];
      if (severity) alert.severity = severity;
      const service = text(project.slug, LIMITS.service) ?? text(project.name, LIMITS.service);
      if (service) alert.service = service;
      const details = detailsOf([text(issue.culprit, 1024)]);
      if (details) alert.details = details;
      const context: Record<string, unknown> = {};
      for (const [k, field] of [['web_url', 'web_url'], ['first_seen', 'firstSeen'], ['last_seen', 'lastSeen'], ['count', 'count']] as const) {
        const v = text(issue[field], 2048);
        if (v) context[k] = v;
      }
      if (Object.keys(context).length) alert.context = context;
      return { alerts: [alert], errors: [] };
    }
    case 'metric_alert': {
      const m = isObject(data.metric_alert) ? data.metric_alert : null;
      if (!m) throw new IntakeFormatError('no data.metric_alert object');
      const id = idOf(m.id);
      if (!id) return { alerts: [], errors: [{ alert: 0, error: 'the metric alert has no id' }] };
      if (action !== 'critical' && action !== 'warning' && action !== 'resolved') return none;
      const rule = isObject(m.alert_rule) ? m.alert_rule : {};
      const alert: ExternalAlert = {
        key: `metric:${id}`,
        status: action === 'resolved' ? 'resolved' : 'firing',
        title: text(m.title, LIMITS.title) ?? text(rule.name, LIMITS.title) ?? `Sentry metric alert ${id}`,
        labels: withLabels(opts.labels, labelsOf({ rule: rule.name, aggregate: rule.aggregate })),
        severity: action === 'critical' ? 'critical' : 'medium',
        // A warning that turns critical is the same firing: only its severity moved.
        occurrence: text(m.date_started, 64) ?? id,
      };
      const details = detailsOf([text(data.description_text, 4096), text(rule.query, 1024)]);
      if (details) alert.details = details;
      const url = text(data.web_url, 2048);
      if (url) alert.context = { web_url: url };
      return { alerts: [alert], errors: [] };
    }
    default:
      return none; // installation, comment, and resources to come: taken, nothing to do
  }
}

function idOf(v: unknown): string | undefined {
  const s = typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : typeof v === 'string' ? v.trim() : '';
  return /^[A-Za-z0-9_-]{1,64}$/.test(s) ? s : undefined;
}

function fromEvent(event: Json, opts: ReaderOptions, rule: string | undefined): ExternalAlert | undefined {
  const issue = idOf(event.issue_id);
  if (!issue) return undefined;
  const tags: Record<string, unknown> = {};
  if (Array.isArray(event.tags)) {
    for (const t of event.tags.slice(0, 50)) if (Array.isArray(t) && typeof t[0] === 'string') tags[t[0]] = t[1];
  }
  const labels = withLabels(opts.labels, labelsOf({ ...tags, project: event.project, environment: event.environment, release: event.release, level: event.level, ...(rule ? { rule } : {}) }));
  const alert: ExternalAlert = { key: `issue:${issue}`, status: 'firing', title: text(event.title, LIMITS.title) ?? text(event.message, LIMITS.title) ?? `Sentry issue ${issue}`, labels };
  const severity = LEVELS[String(event.level)] ?? severityOf(event.level);
  if (severity) alert.severity = severity;
  const service = text(labels.project, LIMITS.service);
  if (service) alert.service = service;
  const host = hostName(text(tags.server_name, LIMITS.host));
  if (host) alert.host = host;
  const details = detailsOf([text(event.culprit, 1024), ...stack(event)]);
  if (details) alert.details = details;
  const context: Record<string, unknown> = {};
  for (const k of ['event_id', 'web_url', 'platform', 'timestamp'] as const) {
    const v = text(typeof event[k] === 'number' ? String(event[k]) : event[k], 2048);
    if (v) context[k] = v;
  }
  if (Object.keys(context).length) alert.context = context;
  return alert;
}

/** The exception and its last frames, as lines ("at file:line in function"). */
function stack(event: Json): string[] {
  const values = isObject(event.exception) && Array.isArray(event.exception.values) ? event.exception.values.slice(-3) : [];
  const lines: string[] = [];
  for (const v of values) {
    if (!isObject(v)) continue;
    lines.push([text(v.type, 256), text(v.value, 2048)].filter(Boolean).join(': '));
    const frames = isObject(v.stacktrace) && Array.isArray(v.stacktrace.frames) ? v.stacktrace.frames.slice(-MAX_FRAMES) : [];
    for (const f of frames.reverse()) {
      if (!isObject(f)) continue;
      lines.push(`  at ${text(f.filename, 512) ?? text(f.module, 512) ?? '?'}:${typeof f.lineno === 'number' ? f.lineno : '?'} in ${text(f.function, 256) ?? '?'}`);
    }
  }
  return lines;
}
