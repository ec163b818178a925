import type { EntityManager } from "@mikro-orm/postgresql";
import { query } from "../db/tx";
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
  values (?, ?, ?, ?, ?::jsonb) returning "id", "type"
), d as (
  insert into "event_deliveries" ("event_id", "endpoint_id", "order_key", "next_attempt_at")
  select e."id", w."id", ?, now() from e join "webhook_endpoints" w
      on w."enabled" and (cardinality(w."event_types") = 0 or e."type" = any(w."event_types"))
)
select e."id"::text as "id", pg_notify('${EVENTS_CHANNEL}', e."id"::text) from e`;

/**
 * Records an event in the transaction of `em` (the caller's change and its
 * event commit or roll back together: the outbox). Returns the event's id.
 * Called outside a transaction, the event commits on its own.
 */
export async function recordEvent(em: EntityManager, input: RecordEventInput): Promise<string> {
  const customerUid = input.customerUid ?? null;
  const subscriptionId = input.subscriptionId ?? null;
  const orderKey = subscriptionId ? `subscription:${subscriptionId}` : customerUid ? `customer:${customerUid}` : null;
  const [row] = await query<{ id: string }>({ em }, RECORD_SQL, [
    input.type,
    customerUid,
    subscriptionId,
    input.merchantUid ?? null,
    JSON.stringify(input.data),
    orderKey,
  ]);
  return String(row.id);
}
