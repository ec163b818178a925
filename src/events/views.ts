import { BadUserInputError } from "../errors";

/** An events row as plain SQL returns it. */
export interface EventRow {
  id: string;
  type: string;
  customer_uid: string | null;
  subscription_id: string | null;
  merchant_uid: string | null;
  data: Record<string, unknown>;
  created_at: Date | string;
}

/** An event as the API shows it (GraphQL Event, the webhook body, the live update). */
export interface EventView {
  id: string;
  type: string;
  createdAt: Date;
  customerUid: string | null;
  subscriptionId: string | null;
  merchantUid: string | null;
  data: Record<string, unknown>;
}

const ID_PREFIX = "evt_";

export function eventId(rowId: string | number): string {
  return `${ID_PREFIX}${rowId}`;
}

/** The row id of an event id (evt_123), or BAD_USER_INPUT. */
export function eventRowId(id: string, field = "id"): string {
  const m = /^evt_([1-9]\d{0,17})$/.exec(id.trim());
  if (!m) throw new BadUserInputError(field, "must be an event id such as evt_123");
  return m[1];
}

export function eventView(r: EventRow): EventView {
  return {
    id: eventId(r.id),
    type: r.type,
    createdAt: r.created_at instanceof Date ? r.created_at : new Date(r.created_at),
    customerUid: r.customer_uid,
    subscriptionId: r.subscription_id,
    merchantUid: r.merchant_uid,
    data: r.data,
  };
}

/** The JSON body of a webhook: the event as the API shows it. */
export function eventPayload(r: EventRow): Record<string, unknown> {
  const v = eventView(r);
  return { ...v, createdAt: v.createdAt.toISOString() };
}
