import { PaymentStatus, SubscriptionStatus } from "../entities/enums";
import { query, type Scope } from "../tx";

/**
 * Records that Iamport registered a claimed (PENDING) charge, in one
 * statement: the payment becomes SCHEDULED at Iamport's time, and its
 * subscription's next charge points at it (unless it points at another
 * charge), only while the payment is still PENDING and its subscription can
 * still be charged (neither CANCELED nor UNPAID). The payment's row lock is
 * taken first, then the subscription's, as `lockBillingRows` orders them;
 * every flow that ends a subscription locks and closes its open charges
 * first, so a cancellation committed meanwhile is seen in the payment's
 * status when the update rechecks it. Returns false when nothing changed:
 * the caller then decides under the locks. Runs in the caller's transaction
 * when it has one.
 */
const MARK_SCHEDULED_SQL = `with p as (
  update "payments" p set "status" = ?, "scheduled_at" = ?, "checked_at" = ?, "updated_at" = ?
  from "subscriptions" s
  where p."id" = ? and p."status" = ? and s."id" = p."subscription_id" and s."status" not in (?, ?)
  returning p."merchant_uid", p."subscription_id"
), s as (
  update "subscriptions" s set "next_payment_at" = ?, "next_merchant_uid" = p."merchant_uid", "updated_at" = ?
  from p
  where s."id" = p."subscription_id" and (s."next_merchant_uid" = p."merchant_uid" or s."next_merchant_uid" is null)
)
select count(*)::int as "n" from p`;

export async function markChargeScheduled(scope: Scope, paymentId: string, at: Date, now: Date): Promise<boolean> {
  const [row] = await query<{ n: number }>(scope, MARK_SCHEDULED_SQL, [
    PaymentStatus.SCHEDULED,
    at,
    now,
    now,
    paymentId,
    PaymentStatus.PENDING,
    SubscriptionStatus.CANCELED,
    SubscriptionStatus.UNPAID,
    at,
    now,
  ]);
  return row.n > 0;
}
