import { Payment, Subscription } from "../../db/entities";
import { PaymentStatus } from "../../db/entities/enums";
import { lockBillingRows } from "../../db/repositories/billing-locks";
import { NotFoundError, toAppError } from "../../errors";
import type { Ctx } from "../context";
import { prorate, withinWithdrawalWindow, type ProratedRefund } from "../domain/proration";
import { iamportNow } from "../settlement";
import type { SubscriptionDeps } from "./deps";
import { get } from "./queries";

/** cancellationPreview's answer: what a cancellation now would give back. */
export interface CancellationPreview extends ProratedRefund {
  subscriptionId: string;
  withinWithdrawalWindow: boolean;
}

/** The current period's payment and what of it a cancellation could refund. */
interface RefundQuote extends ProratedRefund {
  payment: Payment;
  /** What is left to refund of it (paid, less earlier refunds): Iamport's checksum. */
  balance: number;
  withinWithdrawalWindow: boolean;
}

/**
 * What cancelling now would give back: the days of the current paid period
 * and those used (in BILLING_TIME_ZONE, by Iamport's clock, the day of the
 * cancellation counted as used), the pro-rata refund in whole won rounded
 * down (never more than is left to refund of the payment), and whether the
 * payment is within WITHDRAWAL_DAYS. Zeros when no period is paid.
 */
export async function cancellationPreview(deps: SubscriptionDeps, ctx: Ctx, id: string): Promise<CancellationPreview> {
  const sub = await get(ctx, id);
  if (!sub) throw new NotFoundError(`Subscription ${id}`);
  const quote = await refundQuote(deps, ctx, sub, await iamportNow(deps));
  return {
    subscriptionId: sub.id,
    periodDays: quote?.periodDays ?? 0,
    usedDays: quote?.usedDays ?? 0,
    proratedRefund: quote?.proratedRefund ?? 0,
    withinWithdrawalWindow: quote?.withinWithdrawalWindow ?? false,
  };
}

/** The current period's payment and what a cancellation at `now` could refund of it; null when no period is paid. */
export async function refundQuote(deps: SubscriptionDeps, ctx: Ctx, sub: Subscription, now: Date): Promise<RefundQuote | null> {
  if (sub.currentPeriod < 1 || !sub.currentPeriodStart || !sub.currentPeriodEnd) return null;
  const payment = await ctx.em.findOne(
    Payment,
    { subscription: sub.id, period: sub.currentPeriod, status: { $in: [PaymentStatus.PAID, PaymentStatus.CANCELLED] }, impUid: { $ne: null } },
    { orderBy: { attempt: "desc" }, refresh: true },
  );
  if (!payment) return null;
  const paid = payment.paidAmount ?? payment.amount;
  const balance = Math.max(0, paid - payment.cancelledAmount);
  const { billingTimeZone: tz, withdrawalDays } = deps.config;
  const days = prorate({ start: sub.currentPeriodStart, end: sub.currentPeriodEnd }, now, paid, tz);
  return {
    ...days,
    proratedRefund: Math.min(days.proratedRefund, balance),
    payment,
    balance,
    withinWithdrawalWindow: !!payment.paidAt && withinWithdrawalWindow(payment.paidAt, now, withdrawalDays, tz),
  };
}

/**
 * Sends the refund a cancellation claimed (Subscription.refundClaim) through
 * the refund path, with no lock held, and records it on the subscription
 * (refundedAmount) under the locks, once: a repeat, a racing cancellation
 * or reconciliation sends the same refund with the same checksum, which
 * Iamport takes once, and finds it made. A refund Iamport refuses for
 * another reason (the balance changed by a refund elsewhere) is dropped and
 * said in statusReason; one whose outcome is unknown stays claimed for
 * reconciliation. Returns whether the claim is finished.
 */
export async function finishRefund(deps: SubscriptionDeps, ctx: Ctx, id: string): Promise<boolean> {
  const sub = await ctx.em.findOne(Subscription, { id }, { refresh: true });
  const claim = sub?.refundClaim;
  if (!claim) return true;
  const payment = await ctx.em.findOne(Payment, { merchantUid: claim.merchantUid }, { refresh: true });
  let refused: string | null = null;
  if (payment) {
    try {
      await deps.payments.sendRefund(ctx, payment, { amount: claim.amount, balance: claim.balance, reason: claim.reason, claimed: true });
    } catch (err) {
      const e = toAppError(err);
      if (e.code !== "CONFLICT") {
        ctx.log.warn({ subscriptionId: id, merchantUid: claim.merchantUid, err: e.message }, "cancellation refund not confirmed; reconciliation will finish it");
        return false;
      }
      refused = e.message;
    }
  } else {
    refused = `payment ${claim.merchantUid} not found`;
  }
  await ctx.em.transactional(async (em) => {
    const {
      subscriptions: [locked],
    } = await lockBillingRows(em, null, [id]);
    const mine = locked.refundClaim;
    if (!mine || mine.merchantUid !== claim.merchantUid || mine.balance !== claim.balance) return;
    if (refused) locked.statusReason = `${locked.statusReason ?? "canceled"}; the refund of ${claim.amount} won was not made: ${refused}`;
    else locked.refundedAmount += claim.amount;
    locked.refundClaim = null;
  });
  return true;
}

/** Sends the refund a mutation claimed on `sub` (finishRefund), if there is one, and answers `sub` as it is now. */
export async function sendClaimedRefund(deps: SubscriptionDeps, ctx: Ctx, sub: Subscription): Promise<Subscription> {
  await ctx.em.refresh(sub);
  if (sub.refundClaim) {
    await finishRefund(deps, ctx, sub.id);
    await ctx.em.refresh(sub);
  }
  return sub;
}

/** Reconciliation: finishes refunds that cancellations claimed but could not confirm. Returns how many were finished. */
export async function finishClaimedRefunds(deps: SubscriptionDeps, ctx: Ctx, limit: number): Promise<number> {
  const claimed = await ctx.em.find(Subscription, { refundClaim: { $ne: null } }, { limit, orderBy: { id: "asc" }, fields: ["id"] });
  let finished = 0;
  for (const { id } of claimed) if (await finishRefund(deps, ctx, id)) finished += 1;
  return finished;
}
