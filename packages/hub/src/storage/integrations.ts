import { sql } from 'kysely';
import { newId } from '@opspilot/protocol';
import type { Db } from './database.ts';
import type { IntegrationKind, IntegrationsTable } from './tables.ts';
import type { Selectable } from 'kysely';

export type Integration = Selectable<IntegrationsTable>;
/** What may be shown of an integration: everything but its secret (hash or clear). */
export type IntegrationView = Omit<Integration, 'secret_hash' | 'signing_secret'> & { signed: boolean };

const VIEW = ['id', 'name', 'kind', 'labels', 'host_labels', 'enabled', 'created_at', 'created_by', 'updated_at', 'secret_rotated_at', 'last_delivery_at', 'last_error', 'last_error_at'] as const;

function view(row: Omit<Integration, 'secret_hash' | 'signing_secret'> & { signed: boolean | null }): IntegrationView {
  return { ...row, signed: row.signed === true };
}

export async function createIntegration(
  db: Db,
  i: { id: string; name: string; kind: IntegrationKind; labels: Record<string, string>; host_labels: string[]; secret_hash: string; signing_secret: string | null; enabled: boolean; at: Date; by: string },
): Promise<IntegrationView | undefined> {
  const row = await db
    .insertInto('integrations')
    .values({
      id: i.id,
      name: i.name,
      kind: i.kind,
      labels: JSON.stringify(i.labels),
      host_labels: JSON.stringify(i.host_labels),
      secret_hash: i.secret_hash,
      signing_secret: i.signing_secret,
      enabled: i.enabled,
      created_at: i.at,
      created_by: i.by,
      updated_at: i.at,
    })
    .onConflict((oc) => oc.column('name').doNothing())
    .returning([...VIEW, sql<boolean>`signing_secret IS NOT NULL`.as('signed')])
    .executeTakeFirst();
  return row ? view(row) : undefined;
}

export async function listIntegrations(db: Db): Promise<IntegrationView[]> {
  const rows = await db.selectFrom('integrations').select([...VIEW, sql<boolean>`signing_secret IS NOT NULL`.as('signed')]).orderBy('name').execute();
  return rows.map(view);
}

export async function getIntegrationView(db: Db, id: string): Promise<IntegrationView | undefined> {
  const row = await db.selectFrom('integrations').select([...VIEW, sql<boolean>`signing_secret IS NOT NULL`.as('signed')]).where('id', '=', id).executeTakeFirst();
  return row ? view(row) : undefined;
}

/** The whole row, secrets included: for intake's checks only, never for a response. */
export async function getIntegration(db: Db, id: string): Promise<Integration | undefined> {
  return db.selectFrom('integrations').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function secretInUse(db: Db, hash: string): Promise<boolean> {
  return (await db.selectFrom('integrations').select('id').where('secret_hash', '=', hash).executeTakeFirst()) !== undefined;
}

/** The integration a secret belongs to (PagerDuty-style senders name it by routing key), found by its hash. */
export async function integrationBySecretHash(db: Db, hash: string): Promise<Integration | undefined> {
  return db.selectFrom('integrations').selectAll().where('secret_hash', '=', hash).executeTakeFirst();
}

export async function updateIntegration(
  db: Db,
  id: string,
  patch: { name?: string; labels?: Record<string, string>; host_labels?: string[]; enabled?: boolean },
  at: Date,
): Promise<IntegrationView | 'name_taken' | undefined> {
  if (patch.name !== undefined) {
    const clash = await db.selectFrom('integrations').select('id').where('name', '=', patch.name).where('id', '<>', id).executeTakeFirst();
    if (clash) return 'name_taken';
  }
  const row = await db
    .updateTable('integrations')
    .set({
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.labels !== undefined ? { labels: JSON.stringify(patch.labels) } : {}),
      ...(patch.host_labels !== undefined ? { host_labels: JSON.stringify(patch.host_labels) } : {}),
      ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
      updated_at: at,
    })
    .where('id', '=', id)
    .returning([...VIEW, sql<boolean>`signing_secret IS NOT NULL`.as('signed')])
    .executeTakeFirst();
  return row ? view(row) : undefined;
}

export async function rotateIntegrationSecret(db: Db, id: string, secretHash: string, signingSecret: string | null, at: Date): Promise<boolean> {
  const r = await db
    .updateTable('integrations')
    .set({ secret_hash: secretHash, signing_secret: signingSecret, secret_rotated_at: at, updated_at: at })
    .where('id', '=', id)
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** Delete an integration; its incidents and deliveries go with it (the audit trail stays). */
export async function deleteIntegration(db: Db, id: string): Promise<{ name: string } | undefined> {
  return db.deleteFrom('integrations').where('id', '=', id).returning('name').executeTakeFirst();
}

/** A request that authenticated but could not be taken: shown on the integration, nothing else kept. */
export async function noteIntegrationError(db: Db, id: string, error: string, at: Date): Promise<void> {
  await db.updateTable('integrations').set({ last_error: error.slice(0, 1000), last_error_at: at }).where('id', '=', id).execute();
}

export interface DeliveryRow {
  id: string;
  integration_id: string;
  key: string;
  received_at: Date;
  bytes: number;
  body: string;
  alerts: number;
  changed: number;
  errors: { alert: number; error: string }[] | null;
}

/**
 * Record a delivery once: false if this key was taken since `resentAfter` (the same delivery
 * resent), in which case the caller changes nothing. A key last seen before then is taken again
 * (the row moves to this delivery). Runs in the delivery's transaction.
 */
export async function recordDelivery(db: Db, d: DeliveryRow, resentAfter: Date): Promise<boolean> {
  const values = { ...d, errors: d.errors ? JSON.stringify(d.errors) : null };
  const row = await db
    .insertInto('integration_deliveries')
    .values(values)
    .onConflict((oc) =>
      oc
        .constraint('integration_deliveries_once')
        .doUpdateSet({ id: values.id, received_at: values.received_at, bytes: values.bytes, body: values.body, alerts: values.alerts, changed: values.changed, errors: values.errors })
        .where('integration_deliveries.received_at', '<', resentAfter),
    )
    .returning('id')
    .executeTakeFirst();
  if (row) await db.updateTable('integrations').set({ last_delivery_at: d.received_at }).where('id', '=', d.integration_id).execute();
  return row !== undefined;
}

/** What processing a delivery found: how many incidents changed and which alerts were skipped. */
export async function finishDelivery(db: Db, id: string, changed: number, errors: { alert: number; error: string }[]): Promise<void> {
  await db
    .updateTable('integration_deliveries')
    .set({ changed, errors: errors.length ? JSON.stringify(errors.slice(0, 100)) : null })
    .where('id', '=', id)
    .execute();
}

export async function listDeliveries(db: Db, integrationId: string, limit: number) {
  return db
    .selectFrom('integration_deliveries')
    .select(['id', 'key', 'received_at', 'bytes', 'body', 'alerts', 'changed', 'errors'])
    .where('integration_id', '=', integrationId)
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}

/** Deliveries of an integration since `since` whose key starts with `prefix` (error reports of one kind). */
export async function countDeliveries(db: Db, integrationId: string, prefix: string, since: Date): Promise<number> {
  const row = await db
    .selectFrom('integration_deliveries')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('integration_id', '=', integrationId)
    .where('received_at', '>=', since)
    .where(sql<boolean>`starts_with(key, ${prefix})`)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Serialise deliveries of one integration (two at once could open one fingerprint twice). */
export async function lockIntegration(db: Db, id: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext(${'integration:' + id}))`.execute(db);
}

/**
 * The hub's own integration of a kind (`heartbeat`, `monitor`), for the incidents of its heartbeat
 * checks and monitors, made the first time it is needed (named `heartbeats` or `monitors`, or with
 * a suffix if a person took the name). Its secret hash is no SHA-256 of anything: nothing can post
 * to it.
 */
export async function hubIntegration(db: Db, kind: 'heartbeat' | 'monitor', at: Date): Promise<Pick<Integration, 'id' | 'kind' | 'name'>> {
  const find = () => db.selectFrom('integrations').select(['id', 'kind', 'name']).where('kind', '=', kind).orderBy('id').executeTakeFirst();
  const found = await find();
  if (found) return found;
  await sql`SELECT pg_advisory_xact_lock(hashtext(${`opspilot:${kind}-integration`}))`.execute(db);
  const again = await find();
  if (again) return again;
  const id = newId();
  const wanted = `${kind}s`;
  const taken = await db.selectFrom('integrations').select('id').where('name', '=', wanted).executeTakeFirst();
  const name = taken ? `${wanted}-${id.slice(-6).toLowerCase()}` : wanted;
  return db
    .insertInto('integrations')
    .values({ id, name, kind, labels: '{}', host_labels: '[]', secret_hash: `none:${id}`, signing_secret: null, enabled: true, created_at: at, created_by: 'hub', updated_at: at })
    .returning(['id', 'kind', 'name'])
    .executeTakeFirstOrThrow();
}
