import { createHash } from 'node:crypto';
import { newId } from '@opspilot/protocol';
import type { Redactor } from '../incidents/redact.ts';
import { applyExternalAcknowledge, applyExternalAlerts, applyExternalResolve, type LifecycleOptions } from '../incidents/lifecycle.ts';
import type { Db } from '../storage/database.ts';
import { agentsOnHosts, openExternal, type ExternalAlert } from '../storage/external-alerts.ts';
import { countDeliveries, finishDelivery, lockIntegration, recordDelivery, type Integration } from '../storage/integrations.ts';
import { storable, type ReadAlerts } from './normalize.ts';

/** What is kept of a delivery's body to show (GET …/deliveries), after redaction. */
export const STORED_BODY_BYTES = 64 * 1024;
/** The same body again within this window is the same delivery resent (a sender's retry). */
export const RESEND_WINDOW_MS = 60 * 60_000;

export interface DeliveryOutcome {
  duplicate: boolean;
  deliveryId: string;
  alerts: number;
  changed: number;
  /** Error reports counted towards their threshold, no incident yet. */
  held: number;
  errors: ReadAlerts['errors'];
  /** Incidents this delivery changed, and which of them it opened or reopened. */
  incidentIds: string[];
  opened: string[];
}

/**
 * How a delivery is known when it comes again: the sender's own delivery id where it sends one
 * (Sentry's Request-ID), else the SHA-256 of the body (Alertmanager resends a group's notification
 * unchanged when the webhook failed), or nothing: Events v2 and generic senders are idempotent
 * per alert (the same dedup_key and state changes nothing), so each request is new.
 */
export function deliveryKey(kind: Integration['kind'], raw: Buffer, requestId: string | undefined, read: ReadAlerts): string {
  if (requestId && /^[A-Za-z0-9_.:-]{1,128}$/.test(requestId)) return `request:${requestId}`;
  // An error report is counted by its kind (REPORT_THRESHOLD): its key starts with it.
  if (kind === 'error_report') return `report:${read.alerts[0]?.key ?? 'none'}:${newId()}`;
  if (kind === 'pagerduty' || kind === 'generic') return `new:${newId()}`;
  return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

/**
 * Take a delivery in one transaction: recorded once (a resend changes nothing), every alert
 * applied through the lifecycle (linked to the agent of the host it names), the outcome noted.
 * A database error rolls all of it back, and the caller answers 5xx so the sender retries.
 */
export async function takeDelivery(
  deps: { db: Db; lifecycle: LifecycleOptions; redactor: Redactor },
  integration: Integration,
  raw: Buffer,
  key: string,
  read: ReadAlerts,
  at: Date,
): Promise<DeliveryOutcome> {
  const deliveryId = newId();
  const body = storable(deps.redactor.redact(raw.subarray(0, STORED_BODY_BYTES).toString('utf8')).text);
  const outcome: DeliveryOutcome = { duplicate: false, deliveryId, alerts: read.alerts.length, changed: 0, held: 0, errors: [...read.errors], incidentIds: [], opened: [] };
  await deps.db.transaction().execute(async (trx) => {
    await lockIntegration(trx, integration.id);
    const fresh = await recordDelivery(
      trx,
      { id: deliveryId, integration_id: integration.id, key, received_at: at, bytes: raw.length, body, alerts: read.alerts.length, changed: 0, errors: null },
      // A sender's own delivery id is never taken twice (while deliveries are kept); a body seen
      // again after the window is a new notification with the same content.
      key.startsWith('request:') ? new Date(0) : new Date(at.getTime() - RESEND_WINDOW_MS),
    );
    if (!fresh) {
      outcome.duplicate = true;
      return;
    }
    const hosts = await agentsOnHosts(trx, [...new Set(read.alerts.filter((a) => a.status === 'firing' && a.host).map((a) => a.host!))]);
    const cause = { delivery_id: deliveryId };
    const changed = (id: string | undefined) => {
      if (!id) return;
      outcome.changed++;
      outcome.incidentIds.push(id);
    };
    // Firing alerts are taken a run at a time (new incidents among them opened together); a
    // resolve or an acknowledgement between them keeps its place.
    let run: { alert: ExternalAlert; agentId: string | null }[] = [];
    const flush = async () => {
      for (const r of await applyExternalAlerts(trx, deps.lifecycle, integration, run, at, cause)) {
        if (r.change !== 'unchanged') changed(r.incidentId);
        if (r.change === 'opened' || r.change === 'reopened') outcome.opened.push(r.incidentId);
      }
      run = [];
    };
    for (const alert of read.alerts) {
      if (alert.status === 'firing') {
        if (alert.threshold && !(await openExternal(trx, integration.id, alert.key))) {
          const seen = await countDeliveries(trx, integration.id, `report:${alert.key}:`, new Date(at.getTime() - alert.threshold.withinMs));
          if (seen < alert.threshold.count) {
            outcome.held++;
            continue; // not yet: the next reports of this kind are counted with it
          }
        }
        run.push({ alert, agentId: alert.host ? (hosts.get(alert.host) ?? null) : null });
        continue;
      }
      await flush();
      if (alert.status === 'resolved') changed(await applyExternalResolve(trx, deps.lifecycle, integration, alert.key, at, cause));
      else changed(await applyExternalAcknowledge(trx, deps.lifecycle, integration, alert.key, at, cause));
    }
    await flush();
    await finishDelivery(trx, deliveryId, outcome.changed, outcome.errors);
  });
  return outcome;
}
