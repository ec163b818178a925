import type { EntityManager } from "@mikro-orm/postgresql";
import type { Statement } from "../db/sql";
import { EVENTS_CHANNEL, type EventType } from "./types";

export interface RecordEventInput {
  type: EventType;
  customerUid?: string | null;
  subscriptionId?: string | null;
  merchantUid?: string | null;
  /** The object after the change, as the API shows it (never card data: a card appears as the API shows it, masked). */
  data: object;
}

/**
 * One statement that records the event, creates a delivery for every enabled
 * endpoint that takes its type, and notifies the event's id on EVENTS_CHANNEL
 * (PostgreSQL sends a NOTIFY when its transaction commits, never for a
 * rollback). Deliveries of one subscription (or of one customer's card) are
 * ordered by their order key.
 */
const RECORD_SQL = `with e as (
  insert into "events" ("type", "customer_uid", "subscription_id", "merchant_uid", "data")
  values ($1, $2, $3, $4, $5::jsonb) returning "id", "type"
), d as (
  insert into "event_deliveries" ("event_id", "endpoint_id", "order_key", "next_attempt_at")
  select e."id", w."id", $6, now() from e join "webhook_endpoints" w
      on w."enabled" and (cardinality(w."event_types") = 0 or e."type" = any(w."event_types"))
)
select e."id"::text as "id", pg_notify('${EVENTS_CHANNEL}', e."id"::text) from e`;

/** The statement that records one event, for a plain-SQL transaction (`transaction()` of src/db/sql.ts, `q` or `q.all`). */
export function recordEventStatement(input: RecordEventInput): Statement {
  const customerUid = input.customerUid ?? null;
  const subscriptionId = input.subscriptionId ?? null;
  const orderKey = subscriptionId ? `subscription:${subscriptionId}` : customerUid ? `customer:${customerUid}` : null;
  return {
    text: RECORD_SQL,
    values: [input.type, customerUid, subscriptionId, input.merchantUid ?? null, JSON.stringify(input.data), orderKey],
  };
}

interface PgConn {
  query(config: { text: string; values: unknown[] }): Promise<{ rows: Record<string, unknown>[] }>;
}

/**
 * Records an event in the transaction of `em` (the caller's change and its
 * event commit or roll back together: the outbox). Returns the event's id.
 * Called outside a transaction, the event commits on its own.
 */
export async function recordEvent(em: EntityManager, input: RecordEventInput): Promise<string> {
  const trx = em.getTransactionContext() as { client?: { acquireConnection(): Promise<PgConn> } } | undefined;
  const statement = recordEventStatement(input);
  if (trx?.client) {
    // A knex transaction's client answers every acquire with the transaction's own connection.
    const conn = await trx.client.acquireConnection();
    const res = await conn.query({ text: statement.text, values: statement.values ?? [] });
    return String(res.rows[0].id);
  }
  const client = (em.getKnex() as unknown as { client: { acquireConnection(): Promise<PgConn>; releaseConnection(c: PgConn): Promise<void> } }).client;
  const conn = await client.acquireConnection();
  try {
    const res = await conn.query({ text: statement.text, values: statement.values ?? [] });
    return String(res.rows[0].id);
  } finally {
    await client.releaseConnection(conn);
  }
}
