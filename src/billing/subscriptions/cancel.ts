import { Payment, Subscription } from "../../db/entities";
import { CancellationRefund, LIVE_SUBSCRIPTION_STATUSES, PaymentKind, PaymentStatus, SubscriptionStatus } from "../../db/entities/enums";
import { lockBillingRows } from "../../db/repositories/billing-locks";
import { BadUserInputError, ConflictError, NotFoundError } from "../../errors";
import type { Ctx } from "../context";
import { OPEN_CHARGE_STATUSES } from "../domain/transitions";
import { recordSubscriptionChange, subscriptionState } from "../events";
import { iamportNow } from "../settlement";
import { checkUid, optionalText } from "../validation";
import type { SubscriptionDeps } from "./deps";
import { refundQuote, sendClaimedRefund } from "./refunds";
import { withOpenChargesRevoked } from "./revocation";

export interface CancelSubscriptionInput {
  id: string;
  atPeriodEnd?: boolean | null;
  reason?: string | null;
  /** Refund the current period's payment (its unused days, or all of it); the subscription then ends now. */
  refund?: CancellationRefund | null;
}

/**
 * Cancels now (revoking the pending schedule at Iamport) or at the end of the
 * paid period (nothing further is scheduled). Iamport is asked first, with
 * no lock held: the open charges revoked, and those it did not revoke
 * looked up. Its answers are then recorded under the locks of
 * lockBillingRows (the open charges, then the subscription). A renewal's
 * claim made meanwhile is revoked too: one still PENDING is recorded
 * REVOKED (its registrar unschedules it when Iamport registers it), one
 * already registered is revoked after the commit.
 *
 * A period paid by a renewal (a charge Iamport's schedule made) is never left
 * without service: a cancellation during it, now or at its end, takes effect
 * at its end. A renewal charge that could not be revoked because Iamport
 * already ran it (or is running it) is settled first, through the
 * verification the webhook uses, with the cancellation already recorded as
 * at-period-end: the renewal step then grants the period that charge paid
 * for and schedules nothing after it, or, the charge declined, ends the
 * subscription. When Iamport cannot tell yet, the cancellation stays
 * at-period-end and the charge's webhook or reconciliation finishes it the
 * same way, so the end state does not depend on which the server hears first.
 */
export async function cancel(deps: SubscriptionDeps, ctx: Ctx, input: CancelSubscriptionInput): Promise<Subscription> {
  const reason = optionalText("reason", input.reason, 200) ?? null;
  const id = checkUid("id", input.id);
  const refund = input.refund ?? CancellationRefund.NONE;
  if (!Object.values(CancellationRefund).includes(refund)) throw new BadUserInputError("refund", "is not NONE, PRORATED or FULL");
  if (refund !== CancellationRefund.NONE && input.atPeriodEnd) {
    throw new BadUserInputError("refund", "gives back the paid period, so the subscription ends now: do not combine it with atPeriodEnd");
  }
  const exists = await ctx.em.findOne(Subscription, { id });
  if (!exists) throw new NotFoundError(`Subscription ${input.id}`);
  if (exists.status === SubscriptionStatus.CANCELED) {
    // A repeat (or a cancellation racing this one): the refund its first run claimed is finished, never claimed again.
    return sendClaimedRefund(deps, ctx, exists);
  }
  // Whether the paid period is over is a question for Iamport's clock, which runs the schedules.
  const now = await iamportNow(deps);
  // Iamport first, with no lock held: the open charges revoked, and what became of those it did not revoke.
  await withOpenChargesRevoked(deps, ctx, exists, async (tx, sub, { ran, settleRan }) => {
    const em = tx.em;
    if (sub.status === SubscriptionStatus.CANCELED) return;
    const before = subscriptionState(sub);
    const wasAtPeriodEnd = sub.cancelAtPeriodEnd;
    sub.cancelReason = reason;
    sub.nextPaymentAt = null;
    sub.nextMerchantUid = null;
    if (ran.length > 0) {
      sub.cancelAtPeriodEnd = true;
      sub.statusReason = `cancels at the end of the period: a renewal charge ${deps.provider.label} may have made is being settled`;
      await em.flush();
      await recordSubscriptionChange(em, sub, before);
      // Settling records the events of what the charge changed.
      const unsettled = await settleRan();
      // Declined: the renewal step ended it (the settling changed the row). Unknown: its webhook or reconciliation finishes it.
      if ((sub.status as SubscriptionStatus) === SubscriptionStatus.CANCELED || unsettled) return;
    }
    const mark = subscriptionState(sub);
    const periodStillPaid =
      sub.status === SubscriptionStatus.ACTIVE && !!sub.currentPeriodEnd && sub.currentPeriodEnd.getTime() > now.getTime();
    const paidByRenewal = periodStillPaid && (await paidBySchedule(tx, sub));
    // With a refund the paid period is given back, so nothing of it is left to serve.
    if (periodStillPaid && refund === CancellationRefund.NONE && (input.atPeriodEnd || paidByRenewal)) {
      sub.cancelAtPeriodEnd = true;
      sub.statusReason = input.atPeriodEnd
        ? "cancels at the end of the current period"
        : "cancels at the end of the current period, which its renewal charge paid for";
    } else if (input.atPeriodEnd && sub.status === SubscriptionStatus.ACTIVE && sub.currentPeriodEnd) {
      // The period is already over and nothing was paid after it: it ended at its end.
      sub.status = SubscriptionStatus.CANCELED;
      sub.cancelAtPeriodEnd = true;
      sub.canceledAt = new Date();
      sub.statusReason = "canceled at the end of the period";
    } else {
      sub.status = SubscriptionStatus.CANCELED;
      sub.cancelAtPeriodEnd = wasAtPeriodEnd;
      sub.canceledAt = new Date();
      sub.statusReason = reason ? `canceled: ${reason}` : "canceled";
    }
    if (refund !== CancellationRefund.NONE && sub.status === SubscriptionStatus.CANCELED) {
      // Claimed under the subscription's lock, by the one cancellation that ended it; sent after the commit.
      const quote = await refundQuote(deps, tx, sub, now);
      const amount = !quote ? 0 : refund === CancellationRefund.FULL ? quote.balance : quote.proratedRefund;
      if (quote && amount > 0) {
        sub.refundClaim = { merchantUid: quote.payment.merchantUid, amount, balance: quote.balance, reason: reason ?? `subscription canceled (${refund.toLowerCase()} refund)` };
      }
    }
    await em.flush();
    await recordSubscriptionChange(em, sub, mark);
  });
  return sendClaimedRefund(deps, ctx, exists);
}

/** Whether the subscription's current period was paid by a charge of Iamport's schedule (a renewal, or a first charge given startAt). */
async function paidBySchedule(ctx: Ctx, sub: Subscription): Promise<boolean> {
  if (sub.currentPeriod < 1) return false;
  const paid = await ctx.em.count(Payment, {
    subscription: sub.id,
    period: sub.currentPeriod,
    kind: PaymentKind.SCHEDULE,
    status: PaymentStatus.PAID,
  });
  return paid > 0;
}

/**
 * Before the customer's billing key is deleted (CardService.delete): the
 * subscriptions that would still charge it (INCOMPLETE, TRIALING, PAST_DUE, PAUSED, or ACTIVE
 * and not ending at the period end) are canceled now through `cancel` when
 * `cancelSubscriptions` is set (a period a renewal paid for is still served
 * to its end, with nothing scheduled), and otherwise the deletion is refused
 * with CONFLICT naming them (extensions.subscriptionIds).
 */
export async function releaseCard(deps: SubscriptionDeps, ctx: Ctx, customerUid: string, cancelSubscriptions: boolean): Promise<void> {
  const live = await ctx.em.find(
    Subscription,
    {
      customerUid,
      status: { $in: LIVE_SUBSCRIPTION_STATUSES },
      cancelAtPeriodEnd: false,
    },
    { orderBy: { id: "asc" } },
  );
  if (live.length === 0) return;
  const ids = live.map((s) => s.id);
  if (!cancelSubscriptions) {
    const named = ids.length > 10 ? `${ids.slice(0, 10).join(", ")} and ${ids.length - 10} more` : ids.join(", ");
    throw new ConflictError(
      `Card ${customerUid} pays for live subscriptions (${named}): cancel them first, or pass cancelSubscriptions: true`,
      { subscriptionIds: ids },
    );
  }
  for (const id of ids) await cancel(deps, ctx, { id, reason: "the card was deleted" });
}

/**
 * Marks subscriptions set to cancel at period end as CANCELED once their
 * period is over, each under its open payments' and its own row locks (the
 * renewal step's order), so a renewal that grants the next period at the
 * same moment is seen. One with a charge still open (a renewal Iamport ran
 * as the cancellation arrived, its outcome not known yet) waits: its
 * webhook or reconciliation settles it first, and a paid one moves the end.
 */
export async function expireCanceledAtPeriodEnd(ctx: Ctx, now: Date): Promise<number> {
  const due = await ctx.em.find(Subscription, {
    cancelAtPeriodEnd: true,
    status: { $ne: SubscriptionStatus.CANCELED },
    currentPeriodEnd: { $lte: now },
  });
  return endUnderLocks(
    ctx,
    due.map((s) => s.id),
    now,
    (sub) => {
      const over = sub.cancelAtPeriodEnd && !!sub.currentPeriodEnd && sub.currentPeriodEnd.getTime() <= now.getTime();
      if (sub.status === SubscriptionStatus.CANCELED || !over) return null;
      return sub.cancelReason ? `canceled at the end of the period: ${sub.cancelReason}` : "canceled at the end of the period";
    },
  );
}

/**
 * Ends each of `ids` (CANCELED at `now`, with its subscription.canceled) in
 * its own transaction, under its open charges' and its own row locks (the
 * renewal step's order), when `reason` still gives a reason for the row as
 * locked. One with a charge still open is left: that charge is settled first.
 * Returns how many ended.
 */
export async function endUnderLocks(ctx: Ctx, ids: string[], now: Date, reason: (sub: Subscription) => string | null): Promise<number> {
  let ended = 0;
  for (const id of ids) {
    const done = await ctx.em.fork().transactional(async (em) => {
      const {
        payments: open,
        subscriptions: [sub],
      } = await lockBillingRows(em, { subscription: id, status: { $in: OPEN_CHARGE_STATUSES } }, [id]);
      const why = open.length > 0 ? null : reason(sub);
      if (!why) return false;
      const before = subscriptionState(sub);
      sub.status = SubscriptionStatus.CANCELED;
      sub.canceledAt = now;
      sub.statusReason = why;
      await em.flush();
      await recordSubscriptionChange(em, sub, before);
      return true;
    });
    if (done) ended += 1;
  }
  return ended;
}
