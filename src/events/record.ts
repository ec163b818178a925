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
 * One statement that records events (one row each, in the order given, so
 * their ids follow the order in which they happened), creates a delivery for
 * every enabled endpoint that takes each one's type, and notifies each id on
 * EVENTS_CHANNEL (PostgreSQL sends a NOTIFY when its transaction commits,
 * never for a rollback). Deliveries of one subscription (or of one customer's
 * card) are ordered by their order key. `rows` is the VALUES list.
 */
function recordSql(rows: string): string {
  return `with e as (
  insert into "events" ("type", "customer_uid", "subscription_id", "merchant_uid", "data")
  values ${rows} returning "id", "type", "customer_uid", "subscription_id"
), d as (
  insert into "event_deliveries" ("event_id", "endpoint_id", "order_key", "next_attempt_at")
  select e."id", w."id", coalesce('subscription:' || nullif(e."subscription_id", ''), 'customer:' || nullif(e."customer_uid", '')), now()
    from e join "webhook_endpoints" w
      on w."enabled" and (cardinality(w."event_types") = 0 or e."type" = any(w."event_types"))
)
select e."id"::text as "id", pg_notify('${EVENTS_CHANNEL}', e."id"::text) from e order by e."id"`;
}

const ROW = "(?, ?, ?, ?, ?::jsonb)";
const RECORD_ONE = recordSql(ROW);

/**
 * Records an event in the transaction of `em` (the caller's change and its
 * event commit or roll back together: the outbox). Returns the event's id.
 * Called outside a transaction, the event commits on its own.
 */
export async function recordEvent(em: EntityManager, input: RecordEventInput): Promise<string> {
  return (await recordEvents(em, [input]))[0];
}

/** Records several events of one change in one statement, in the transaction of `em`, in the order given; returns their ids. */
export async function recordEvents(em: EntityManager, inputs: readonly RecordEventInput[]): Promise<string[]> {
  if (inputs.length === 0) return [];
  const values: unknown[] = [];
  for (const input of inputs) {
    values.push(input.type, input.customerUid ?? null, input.subscriptionId ?? null, input.merchantUid ?? null, JSON.stringify(input.data));
  }
  const text = inputs.length === 1 ? RECORD_ONE : recordSql(Array.from(inputs, () => ROW).join(", "));
  const rows = await query<{ id: string }>({ em }, text, values);
  return rows.map((r) => String(r.id));
}
