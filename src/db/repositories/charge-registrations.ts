import { PaymentStatus, SubscriptionStatus } from "../entities/enums";
import { query, type Scope } from "../tx";

/**
 * Records that Iamport registered claimed (PENDING) charges, in one
 * statement (the payments locked in id order first, as lockBillingRows
 * orders them, so two such statements or a settlement never wait on each
 * other in a cycle): each payment becomes SCHEDULED at Iamport's time for it, and
 * its subscription's next charge points at it (unless it points at another
 * charge), only while the payment is still PENDING and its subscription can
 * still be charged (neither CANCELED nor UNPAID). The payments' row locks are
 * taken first, then the subscriptions', as `lockBillingRows` orders them;
 * every flow that ends a subscription locks and closes its open charges
 * first, so a cancellation committed meanwhile is seen in the payment's
 * status when the update rechecks it. Returns the ids of the payments that
 * changed; for the others the caller decides under the locks. Runs in the
 * caller's transaction when it has one.
 */
const MARK_SCHEDULED_SQL = `with v as (
  select distinct on ("id") * from unnest(?::bigint[], ?::timestamptz[]) as v("id", "at")
), locked as (
  select p."id" from "payments" p where p."id" in (select "id" from v) order by p."id" for update
), p as (
  update "payments" p set "status" = ?, "scheduled_at" = v."at", "checked_at" = ?, "updated_at" = ?
  from v, locked l, "subscriptions" s
  where p."id" = v."id" and l."id" = p."id" and p."status" = ? and s."id" = p."subscription_id" and s."status" not in (?, ?)
  returning p."id", p."merchant_uid", p."subscription_id", v."at"
), s as (
  update "subscriptions" s set "next_payment_at" = p."at", "next_merchant_uid" = p."merchant_uid", "updated_at" = ?
  from p
  where s."id" = p."subscription_id" and (s."next_merchant_uid" = p."merchant_uid" or s."next_merchant_uid" is null)
)
select p."id"::text as "id" from p`;

/** A charge Iamport registered, and the time Iamport will run it. */
export interface ChargeScheduled {
  paymentId: string;
  at: Date;
}

export async function markChargesScheduled(scope: Scope, charges: readonly ChargeScheduled[], now: Date): Promise<Set<string>> {
  const rows = await query<{ id: string }>(scope, MARK_SCHEDULED_SQL, [
    charges.map((c) => c.paymentId),
    charges.map((c) => c.at),
    PaymentStatus.SCHEDULED,
    now,
    now,
    PaymentStatus.PENDING,
    SubscriptionStatus.CANCELED,
    SubscriptionStatus.UNPAID,
    now,
  ]);
  return new Set(rows.map((r) => r.id));
}
