import { sql, type OnConflictBuilder, type OnConflictDatabase, type OnConflictTables, type OnConflictUpdateBuilder } from 'kysely';
import type { Database } from './tables.ts';

/**
 * An incident's pending Slack message is asked for again: its version bumped, so the sender edits
 * it once more. The conflict clause of enqueueMessage (notifications.ts) and of the alert's
 * statement (incidents.ts); a module of its own since notifications.ts imports incidents.ts.
 */
export function pendingMessage<DB extends Database>(oc: OnConflictBuilder<DB, 'notifications'>): OnConflictUpdateBuilder<OnConflictDatabase<DB, 'notifications'>, OnConflictTables<'notifications'>> {
  return (
    oc
      .column('incident_id')
      // Literals, not parameters: a prepared statement's generic plan cannot match a partial index to a parameter.
      .where(sql<boolean>`kind = 'message'`)
      .where('done_at', 'is', null)
      .doUpdateSet(
        // Kysely cannot type the update set of a table in a generic database (DB is Database plus
        // the alert statement's steps); the column is the notifications table's own version.
        { version: sql<number>`notifications.version + 1` } as never,
      )
  );
}
