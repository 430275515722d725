import { newId } from '@opspilot/protocol';
import type { ExternalAlert } from '../storage/external-alerts.ts';
import type { ReaderOptions } from './alertmanager.ts';
import { IntakeFormatError, LIMITS, detailsOf, hostName, isObject, labelsOf, linksOf, severityOf, text, withLabels, type ReadAlerts } from './normalize.ts';

const ACTIONS = ['trigger', 'acknowledge', 'resolve'] as const;
const SEVERITIES = ['critical', 'error', 'warning', 'info'] as const;

/** The routing key of an Events API v2 body, if it has one (to find its integration). */
export function routingKeyOf(body: unknown): string | undefined {
  return isObject(body) && typeof body.routing_key === 'string' && body.routing_key.length > 0 && body.routing_key.length <= 256 ? body.routing_key : undefined;
}

/**
 * PagerDuty's Events API v2 event, as many tools can send: `event_action` trigger, acknowledge
 * or resolve, keyed by `dedup_key` (a trigger without one gets a new key, returned in the
 * answer); `payload.summary`, `severity` and `source` are required for a trigger, as PagerDuty
 * requires them. The payload's `source` is usually the host.
 */
export function readPagerDuty(body: unknown, opts: ReaderOptions): ReadAlerts & { dedupKey: string } {
  if (!isObject(body)) throw new IntakeFormatError('the body is not a JSON object (an Events API v2 event)');
  const action = body.event_action;
  if (typeof action !== 'string' || !(ACTIONS as readonly string[]).includes(action)) throw new IntakeFormatError(`"event_action" must be one of ${ACTIONS.join(', ')}`);
  const given = body.dedup_key;
  if (given !== undefined && (typeof given !== 'string' || given.length === 0 || given.length > LIMITS.key)) throw new IntakeFormatError(`"dedup_key" is a string of 1-${LIMITS.key} characters`);
  if (action !== 'trigger' && given === undefined) throw new IntakeFormatError(`"dedup_key" is required to ${action}`);
  const key = (given as string | undefined) ?? newId();
  if (action === 'resolve' || action === 'acknowledge') {
    return { dedupKey: key, errors: [], alerts: [{ key, status: action === 'resolve' ? 'resolved' : 'acknowledged', title: key, labels: {} }] };
  }
  const p = body.payload;
  if (!isObject(p)) throw new IntakeFormatError('"payload" is required for a trigger');
  const summary = text(p.summary, LIMITS.title);
  if (!summary) throw new IntakeFormatError('"payload.summary" is required (1-1024 characters)');
  if (typeof p.severity !== 'string' || !(SEVERITIES as readonly string[]).includes(p.severity)) throw new IntakeFormatError(`"payload.severity" must be one of ${SEVERITIES.join(', ')}`);
  const source = text(p.source, 255);
  if (!source) throw new IntakeFormatError('"payload.source" is required');
  const labels = withLabels(opts.labels, labelsOf({ source, component: p.component, group: p.group, class: p.class }));
  // Triggers of an open dedup_key are the same firing: they refresh it, never count (as PagerDuty does).
  const alert: ExternalAlert = { key, status: 'firing', title: summary, labels, severity: severityOf(p.severity)!, occurrence: 'triggered' };
  const service = text(p.component, LIMITS.service) ?? text(p.group, LIMITS.service);
  if (service) alert.service = service;
  const host = hostName(source);
  if (host) alert.host = host;
  const custom = p.custom_details;
  const details = detailsOf([typeof custom === 'string' ? custom : custom !== undefined ? JSON.stringify(custom, null, 2) : undefined]);
  if (details) alert.details = details;
  const context: Record<string, unknown> = {};
  const at = text(p.timestamp, 64);
  if (at) context.occurred_at = at;
  for (const k of ['client', 'client_url'] as const) {
    const v = text(body[k], 2048);
    if (v) context[k] = v;
  }
  const links = linksOf(body.links);
  if (links.length) context.links = links;
  if (Object.keys(context).length) alert.context = context;
  return { dedupKey: key, errors: [], alerts: [alert] };
}
