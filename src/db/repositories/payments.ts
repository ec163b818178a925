import type { PaymentStatus } from "../entities/enums";
import { query, type Scope } from "../tx";

/**
 * Payment reads for GraphQL: plain rows, no entity. A read hydrating managed
 * entities (identity map, change-set snapshot) costs several times the query
 * itself, and nothing a read returns is ever flushed.
 */

/**
 * The columns a GraphQL Payment shows (plus id for cursors and
 * subscription_id for its field: a plan change's difference charge shows the
 * subscription it adjusts).
 */
export const PAYMENT_VIEW_COLUMNS =
  "id, merchant_uid, imp_uid, customer_uid, name, amount, paid_amount, cancelled_amount, tax_free_amount, vat_amount, currency, status, fail_reason, " +
  "scheduled_at, paid_at, failed_at, cancelled_at, receipt_url, coalesce(subscription_id, adjusts_subscription_id) as subscription_id, created_at, updated_at";

/** A row of PAYMENT_VIEW_COLUMNS; timestamps as the driver parses them. */
export interface PaymentViewRow {
  id: string;
  merchant_uid: string;
  imp_uid: string | null;
  customer_uid: string | null;
  name: string;
  amount: number;
  paid_amount: number | null;
  cancelled_amount: number;
  tax_free_amount: number;
  vat_amount: number | null;
  currency: string;
  status: PaymentStatus;
  fail_reason: string | null;
  scheduled_at: Date | null;
  paid_at: Date | null;
  failed_at: Date | null;
  cancelled_at: Date | null;
  receipt_url: string | null;
  subscription_id: string | null;
  created_at: Date;
  updated_at: Date;
}

/** One order by its merchant_uid, its imp_uid, or both (both must match). */
export async function findPayment(scope: Scope, by: { merchantUid?: string; impUid?: string }): Promise<PaymentViewRow | null> {
  const where: string[] = [];
  const values: string[] = [];
  if (by.merchantUid !== undefined) {
    where.push("merchant_uid = ?");
    values.push(by.merchantUid);
  }
  if (by.impUid !== undefined) {
    where.push("imp_uid = ?");
    values.push(by.impUid);
  }
  if (where.length === 0) throw new Error("findPayment needs merchantUid or impUid");
  const rows = await query<PaymentViewRow>(scope, `select ${PAYMENT_VIEW_COLUMNS} from payments where ${where.join(" and ")}`, values);
  return rows[0] ?? null;
}

export interface PaymentListFilter {
  customerUid?: string;
  status?: PaymentStatus;
  /** Only ids below this one (the keyset cursor). */
  beforeId?: string;
}

/** A listed row and the subscription it was listed for (null in a list not by subscription). */
export type ListedPaymentRow = PaymentViewRow & { listed_for: string | null };

/**
 * Up to `limit` payments, newest (highest id) first. With `subscriptionIds`,
 * up to `limit` of each of these subscriptions, in one statement (a list of
 * subscriptions reads its rows' payments together): the same read, run once
 * per id (a lateral join).
 */
export async function listPayments(
  scope: Scope,
  filter: PaymentListFilter,
  limit: number,
  subscriptionIds?: readonly string[],
): Promise<ListedPaymentRow[]> {
  const where: string[] = [];
  const values: unknown[] = [];
  const add = (condition: string, ...vals: unknown[]) => {
    where.push(condition);
    values.push(...vals);
  };
  // A subscription's renewals and retries, and the charges that adjust it (a plan change's difference).
  if (subscriptionIds !== undefined) where.push("(subscription_id = s.id or adjusts_subscription_id = s.id)");
  if (filter.customerUid !== undefined) add("customer_uid = ?", filter.customerUid);
  if (filter.status !== undefined) add("status = ?", filter.status);
  if (filter.beforeId !== undefined) add("id < ?", filter.beforeId);
  values.push(limit);
  const listedFor = subscriptionIds === undefined ? "null" : "s.id";
  const one = `select ${PAYMENT_VIEW_COLUMNS}, ${listedFor} as listed_for from payments ${where.length ? `where ${where.join(" and ")}` : ""} order by id desc limit ?`;
  if (subscriptionIds === undefined) return query<ListedPaymentRow>(scope, one, values);
  const text = `select p.* from unnest(?::varchar[]) as s(id) cross join lateral (${one}) p order by p.listed_for, p.id desc`;
  return query<ListedPaymentRow>(scope, text, [subscriptionIds, ...values]);
}
