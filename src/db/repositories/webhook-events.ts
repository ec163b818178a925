import { query, type Scope } from "../tx";

/** An event to record in the inbox. */
export interface InboxEvent {
  source: string;
  impUid: string;
  merchantUid: string | null;
  claimedStatus: string | null;
  /** JSON text. */
  body: string;
  remoteIp: string | null;
  receivedAt: Date;
}

/**
 * The inbox insert of a batch, one array parameter per column. The ids are
 * drawn in a CTE of their own, materialized once (it is read twice and calls
 * nextval), so each id comes back beside the position of its event (`n`),
 * whatever order the insert returns rows in; only ids of rows the insert
 * returned come back.
 */
const INBOX_INSERT = `with v as (
   select nextval('webhook_events_id_seq') as id, v.*
     from unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[]) with ordinality
       as v(source, imp_uid, merchant_uid, claimed_status, body, remote_ip, received_at, n)
 ), ins as (
   insert into webhook_events (id, source, imp_uid, merchant_uid, claimed_status, body, remote_ip, received_at, attempts)
   select id, source, imp_uid, merchant_uid, claimed_status, body::jsonb, remote_ip, received_at, 0 from v
   returning id
 )
 select v.id, v.n from v join ins on ins.id = v.id`;

/**
 * Inserts the events with one statement; returns each inserted event's id
 * at its position in `events` (undefined where the database returned none).
 */
export async function insertInboxEvents(scope: Scope, events: readonly InboxEvent[]): Promise<(string | undefined)[]> {
  const col = <T>(f: (e: InboxEvent) => T): T[] => events.map(f);
  const rows = await query<{ id: string; n: string }>(scope, INBOX_INSERT, [
    col((e) => e.source),
    col((e) => e.impUid),
    col((e) => e.merchantUid),
    col((e) => e.claimedStatus),
    col((e) => e.body),
    col((e) => e.remoteIp),
    col((e) => e.receivedAt),
  ]);
  const ids = new Array<string | undefined>(events.length);
  for (const row of rows) ids[Number(row.n) - 1] = row.id;
  return ids;
}

/** A processing attempt of an event: its outcome, and when it was done (null: it is to be processed again). */
export interface EventOutcome {
  id: string;
  outcome: string;
  processedAt: Date | null;
}

/**
 * Counts a processing attempt of each event, with its outcome; `processedAt`
 * marks it done. One statement for all of them (one array parameter per
 * column); an event named twice counts one attempt, with its last outcome.
 */
export async function recordEventOutcomes(scope: Scope, outcomes: readonly EventOutcome[]): Promise<void> {
  const last = new Map(outcomes.map((o) => [o.id, o]));
  const list = [...last.values()];
  await query(
    scope,
    `update webhook_events w set attempts = w.attempts + 1, outcome = v.outcome, processed_at = coalesce(v.processed_at, w.processed_at)
       from unnest(?::bigint[], ?::text[], ?::timestamptz[]) as v(id, outcome, processed_at)
      where w.id = v.id`,
    [list.map((o) => o.id), list.map((o) => o.outcome), list.map((o) => o.processedAt)],
  );
}
