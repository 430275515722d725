import type { ExecResultPayload } from '@opspilot/protocol';
import type { Db } from './database.ts';
import type { ExecOrigin, ExecRequest } from './tables.ts';

export async function createExecRequest(
  db: Db,
  req: { id: string; agentId: string; command: string; params: Record<string, string | number | boolean>; timeoutMs: number; requestedBy: string; origin: ExecOrigin },
): Promise<void> {
  await db
    .insertInto('exec_requests')
    .values({
      id: req.id,
      agent_id: req.agentId,
      command: req.command,
      params: JSON.stringify(req.params),
      timeout_ms: req.timeoutMs,
      requested_by: req.requestedBy,
      origin: req.origin,
    })
    .execute();
}

/** pending → sent. A result that raced ahead of this update is left as it is. */
export async function markExecSent(db: Db, id: string, at: Date): Promise<void> {
  await db.updateTable('exec_requests').set({ status: 'sent', sent_at: at }).where('id', '=', id).where('status', '=', 'pending').execute();
}

export async function markExecUndelivered(db: Db, id: string, at: Date): Promise<void> {
  await db
    .updateTable('exec_requests')
    .set({ status: 'undelivered', completed_at: at })
    .where('id', '=', id)
    .where('status', 'in', ['pending', 'sent'])
    .execute();
}

/** sent → timeout when the hub stops waiting. A result arriving later still completes the row. */
export async function markExecTimedOut(db: Db, id: string): Promise<void> {
  await db.updateTable('exec_requests').set({ status: 'timeout' }).where('id', '=', id).where('status', 'in', ['pending', 'sent']).execute();
}

/**
 * Store an agent's result for one of its own requests, once: a second result for the same
 * request, or a result naming another agent's request, changes nothing. Returns whether it did.
 */
export async function completeExecRequest(db: Db, agentId: string, result: ExecResultPayload, at: Date): Promise<boolean> {
  const updated = await db
    .updateTable('exec_requests')
    .set({
      status: result.ok ? 'succeeded' : 'failed',
      completed_at: at,
      ok: result.ok,
      exit_code: result.exit_code,
      stdout: result.stdout,
      stderr: result.stderr,
      duration_ms: result.duration_ms,
      truncated: result.truncated,
      error_code: result.error_code ?? null,
    })
    .where('id', '=', result.request_id)
    .where('agent_id', '=', agentId)
    .where('status', 'in', ['pending', 'sent', 'timeout'])
    .executeTakeFirst();
  return updated.numUpdatedRows > 0n;
}

export async function getExecRequest(db: Db, id: string): Promise<ExecRequest | undefined> {
  return db.selectFrom('exec_requests').selectAll().where('id', '=', id).executeTakeFirst();
}
