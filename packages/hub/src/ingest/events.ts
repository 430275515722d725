import type { Db } from '../storage/database.ts';
import { completeExecRequests } from '../storage/exec-requests.ts';
import type { ClusterChannel } from '../storage/cluster.ts';
import { agentOfKey, claimEnvelopeIds, existingAgents, idKey, inSavepoint, refusedData, type EventBatch, type EventItem, type EventOutcome } from '../storage/ingest-batch.ts';
import { applyAlert, applyResolve, type LifecycleOptions } from '../incidents/lifecycle.ts';
import { storeCheckResults } from '../storage/monitors.ts';

const YIELD_AFTER_MS = 20;

/** When this hub sent an exec request, if it did and is waiting for its result. */
export type SentAt = (requestId: string) => Date | undefined;

/** What a statement storing exec results needs to tell the other hubs itself, if there are any. */
export interface ResultHooks {
  sentAt?: SentAt;
  execDone?: () => ClusterChannel | null;
}

/**
 * Store alerts, resolves, exec results and check results, each envelope id once. Exec results go
 * in one statement of their own (someone is waiting for them: one round trip), with when this hub
 * sent them (`sentAt`) and the news to the other hubs (`execDone`); the others in one
 * transaction, in the order they arrived, each alert in one statement (a lone alert: that
 * statement alone, one round trip). Events of an agent deleted
 * meanwhile are skipped.
 */
export async function storeEvents(db: Db, batch: EventBatch, lifecycle: LifecycleOptions, hooks: ResultHooks = {}): Promise<EventOutcome> {
  try {
    return await storeEventsTogether(db, batch, lifecycle, true, hooks);
  } catch (err) {
    if (!refusedData(err) || batch.items.length === 0) throw err;
    return storeEventsOneByOne(db, batch, lifecycle, hooks);
  }
}

/**
 * The batch again, each message in a savepoint of its own: what the database refuses is rolled
 * back alone and named in `refused`; the others commit together.
 */
async function storeEventsOneByOne(db: Db, batch: EventBatch, lifecycle: LifecycleOptions, hooks: ResultHooks): Promise<EventOutcome> {
  const outcome: EventOutcome = { completedExecs: [], incidents: [], opened: [], monitors: [], certificates: [], refused: [] };
  await db.transaction().execute(async (trx) => {
    for (const [i, item] of batch.items.entries()) {
      const one = await inSavepoint(trx, `item_${i}`, () => storeEventsTogether(trx, { items: [item], ids: [], receivedAt: batch.receivedAt }, lifecycle, false, hooks));
      if ('value' in one) {
        outcome.completedExecs.push(...one.value.completedExecs);
        if (one.value.announced) outcome.announced = true;
        outcome.incidents.push(...one.value.incidents);
        outcome.opened.push(...one.value.opened);
        outcome.monitors.push(...one.value.monitors);
        outcome.certificates.push(...one.value.certificates);
      } else if (item.msgId !== undefined) {
        outcome.refused.push({ agentId: item.agentId, msgId: item.msgId, reason: `the hub could not store this ${item.kind}: ${one.refused.message.replace(/"[^"\n]{17,}"/g, '"[value]"').slice(0, 300)}` });
      }
    }
  });
  return outcome;
}

async function storeEventsTogether(db: Db, batch: EventBatch, lifecycle: LifecycleOptions, ownTransaction: boolean, hooks: ResultHooks): Promise<EventOutcome> {
  const results = batch.items.filter((i): i is Extract<EventItem, { kind: 'exec_result' }> => i.kind === 'exec_result');
  const ordered = batch.items.filter((i) => i.kind !== 'exec_result');
  const outcome: EventOutcome = { completedExecs: [], incidents: [], opened: [], monitors: [], certificates: [], refused: [] };
  if (results.length > 0) {
    const notice = hooks.execDone?.() ?? undefined;
    outcome.completedExecs = await completeExecRequests(
      db,
      results.map((r) => {
        const sent = hooks.sentAt?.(r.payload.request_id);
        return { agentId: r.agentId, msgId: r.msgId, at: r.at, result: r.payload, ...(sent ? { sentAt: sent } : {}) };
      }),
      notice,
    );
    outcome.announced = notice !== undefined;
  }
  if (ordered.length === 0) return outcome;
  // An alert claims its own envelope id in the statement that records it; the others' ids are
  // claimed here, together.
  const ids = ordered.filter((i) => i.msgId !== undefined && i.kind !== 'alert').map((i) => ({ agentId: i.agentId, msgId: i.msgId! }));
  const write = async (trx: Db) => {
    // A claimed id proves its agent exists (the claim joins agents); only items without an id
    // need asking.
    const fresh = await claimEnvelopeIds(trx, ids, batch.receivedAt);
    const unnamed = [...new Set(ordered.filter((i) => i.msgId === undefined && i.kind !== 'alert').map((i) => i.agentId))];
    const existing = new Set([...(await existingAgents(trx, unnamed)), ...[...fresh].map(agentOfKey)]);
    let since = performance.now();
    for (const item of ordered) {
      // On the embedded database every statement runs on the hub's own thread: a batch of large
      // alerts would be one long stall. Past 20 ms of this batch, a turn of the event loop; a
      // batch of small alerts (the flood case) keeps its transaction short and never waits.
      if (performance.now() - since > YIELD_AFTER_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        since = performance.now();
      }
      if (item.kind === 'alert') {
        const claim = item.msgId !== undefined ? { msgId: item.msgId, receivedAt: batch.receivedAt } : undefined;
        const recorded = await applyAlert(trx, lifecycle, item.agentId, item.payload, item.at, 'agent', claim);
        if (!recorded) continue; // a copy seen before, or its agent is gone
        outcome.incidents.push(recorded.incidentId);
        if (recorded.change !== 'repeated') outcome.opened.push(recorded.incidentId);
        continue;
      }
      // The first item carrying a fresh id is stored; later copies are duplicates.
      if (item.msgId !== undefined && !fresh.delete(idKey(item.agentId, item.msgId))) continue;
      if (!existing.has(item.agentId)) continue;
      if (item.kind === 'resolve') {
        const id = await applyResolve(trx, lifecycle, { agentId: item.agentId, ...item.payload }, item.at, 'agent', item.payload.message);
        if (id) outcome.incidents.push(id);
      } else if (item.kind === 'check_results') {
        const stored = await storeCheckResults(trx, item.agentId, item.payload.results, batch.receivedAt);
        outcome.monitors.push(...stored.changed);
        outcome.certificates.push(...stored.certificates);
      }
    }
  };
  // A lone alert with its envelope id is one statement, atomic by itself: no transaction around
  // it, one round trip (applyAlert commits a rare follow-up after it). Retried after a failure,
  // its claim makes it a no-op. Anything else goes in one transaction.
  const lone = ordered.length === 1 && ordered[0]!.kind === 'alert' && ordered[0]!.msgId !== undefined;
  if (ownTransaction && !lone) await db.transaction().execute(write);
  else await write(db);
  return outcome;
}

