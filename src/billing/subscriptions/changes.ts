import { Payment, Subscription } from "../../db/entities";
import { PaymentKind, SubscriptionStatus } from "../../db/entities/enums";
import { lockBillingRows } from "../../db/repositories/billing-locks";
import { BadUserInputError, NotFoundError } from "../../errors";
import { requireActiveCard } from "../card.service";
import type { Ctx } from "../context";
import { notBefore, wholeSeconds } from "../domain/settlement";
import { recordSubscriptionChange, subscriptionState } from "../events";
import { iamportNow, newSubscriptionCharge } from "../settlement";
import { checkFuture, checkUid } from "../validation";
import { chargeAndApply, claimedAttempts, registerClaimedRenewal } from "./charge";
import type { SubscriptionDeps } from "./deps";
import { withOpenChargesRevoked } from "./revocation";

/**
 * Charges a PAST_DUE or UNPAID subscription now (typically after the
 * customer registered a new card): the dunning retries still open are
 * revoked at Iamport first (with no lock held), then one new attempt of the
 * unpaid period is claimed under the subscription's lock, under its
 * deterministic merchant_uid, and charged through chargeAndApply. Paid:
 * ACTIVE, the period granted on the anchor's boundaries, the next renewal
 * scheduled. Declined: it counts as one of the dunning attempts (the next
 * retry scheduled on RETRY_SCHEDULE, or UNPAID when none is left; an
 * UNPAID subscription stays UNPAID). A repeat while the attempt is in
 * flight, or after it paid, charges nothing and answers the subscription.
 * A dunning retry Iamport ran before it could be revoked is settled
 * instead, and nothing more is charged.
 */
export async function retryPayment(deps: SubscriptionDeps, ctx: Ctx, idRaw: string): Promise<Subscription> {
  const id = checkUid("id", idRaw);
  const exists = await ctx.em.findOne(Subscription, { id });
  if (!exists) throw new NotFoundError(`Subscription ${idRaw}`);
  const retryable = (st: SubscriptionStatus) => st === SubscriptionStatus.PAST_DUE || st === SubscriptionStatus.UNPAID;
  if (exists.status === SubscriptionStatus.ACTIVE) return exists;
  if (!retryable(exists.status)) throw new BadUserInputError("id", `only a PAST_DUE or UNPAID subscription can be retried (this one is ${exists.status})`);
  await requireActiveCard(ctx, exists.customerUid);
  // The open dunning retries revoked at Iamport first, and those that ran looked up.
  const charge = await withOpenChargesRevoked(deps, ctx, exists, async ({ em }, sub, { ran, settleRan }): Promise<Payment | null> => {
    if (ran.length > 0) {
      // A retry Iamport made meanwhile: its outcome is this attempt's; nothing more is charged.
      await settleRan();
      return null;
    }
    if (!retryable(sub.status)) return null;
    const period = sub.currentPeriod + 1;
    const { latest, chargeInFlight } = await claimedAttempts(em, id, period);
    // An attempt already in flight (a repeat of this request): it is the answer, not a second charge.
    if (chargeInFlight) return null;
    // An UNPAID subscription's attempt comes after every dunning retry, so a decline leaves it UNPAID.
    const floor = sub.status === SubscriptionStatus.UNPAID ? deps.config.retryScheduleSeconds.length + 1 : 1;
    const charge = newSubscriptionCharge(em, sub, period, Math.max(latest + 1, floor), PaymentKind.AGAIN, null);
    sub.nextPaymentAt = null;
    sub.nextMerchantUid = charge.merchantUid;
    sub.statusReason = `retrying the renewal now (${charge.merchantUid})`;
    await em.persistAndFlush(charge);
    return charge;
  });
  if (charge) await chargeAndApply(deps, ctx, await ctx.em.findOneOrFail(Payment, { id: charge.id }));
  await ctx.em.refresh(exists);
  return exists;
}

/**
 * Pauses an ACTIVE subscription at once: its pending renewal is revoked at
 * Iamport first (with no lock held), then, under the locks, it becomes
 * PAUSED with nothing scheduled, so nothing is charged while it is paused.
 * A renewal Iamport ran before it could be revoked is settled first (the
 * period it paid is then the one paused). `resumesAt`: reconciliation
 * resumes it then. Pausing a PAUSED subscription answers it as it is.
 */
export async function pause(deps: SubscriptionDeps, ctx: Ctx, idRaw: string, resumesAtRaw?: Date | null): Promise<Subscription> {
  const id = checkUid("id", idRaw);
  const exists = await ctx.em.findOne(Subscription, { id });
  if (!exists) throw new NotFoundError(`Subscription ${idRaw}`);
  if (exists.status === SubscriptionStatus.PAUSED) return exists;
  if (exists.status !== SubscriptionStatus.ACTIVE || exists.cancelAtPeriodEnd) {
    throw new BadUserInputError("id", `only an ACTIVE subscription that is not set to cancel can be paused (this one is ${exists.status}${exists.cancelAtPeriodEnd ? ", canceling at the period end" : ""})`);
  }
  const now = await iamportNow(deps);
  const resumesAt = resumesAtRaw ? checkFuture("resumesAt", resumesAtRaw, now) : null;
  await withOpenChargesRevoked(deps, ctx, exists, async ({ em }, sub, { ran, settleRan }) => {
    if (ran.length > 0) await settleRan();
    if (sub.status !== SubscriptionStatus.ACTIVE || sub.cancelAtPeriodEnd) return;
    const before = subscriptionState(sub);
    sub.status = SubscriptionStatus.PAUSED;
    sub.pausedAt = now;
    sub.resumesAt = resumesAt;
    sub.nextPaymentAt = null;
    sub.nextMerchantUid = null;
    sub.statusReason = resumesAt ? `paused until ${resumesAt.toISOString()}` : "paused";
    await em.flush();
    await recordSubscriptionChange(em, sub, before);
  });
  await ctx.em.refresh(exists);
  return exists;
}

/**
 * Resumes a PAUSED subscription: a new period is charged at once (under
 * the next attempt's merchant_uid of the period after the last paid one,
 * claimed under the lock, so a repeat never charges twice) and starts a
 * new anchor when paid, the next renewal scheduled from it; declined, it
 * stays PAUSED. For an ACTIVE subscription set to cancel at the period
 * end, it undoes the cancellation and schedules the next renewal again at
 * the period's end. Anything else is answered as it is (ACTIVE) or refused.
 */
export async function resume(deps: SubscriptionDeps, ctx: Ctx, idRaw: string): Promise<Subscription> {
  const id = checkUid("id", idRaw);
  const exists = await ctx.em.findOne(Subscription, { id });
  if (!exists) throw new NotFoundError(`Subscription ${idRaw}`);
  if (exists.status === SubscriptionStatus.ACTIVE && !exists.cancelAtPeriodEnd) return exists;
  if (exists.status !== SubscriptionStatus.PAUSED && exists.status !== SubscriptionStatus.ACTIVE) {
    throw new BadUserInputError("id", `only a PAUSED subscription, or one set to cancel at the period end, can be resumed (this one is ${exists.status})`);
  }
  await requireActiveCard(ctx, exists.customerUid);
  const now = await iamportNow(deps);
  const claimed = await ctx.em.transactional(async (em): Promise<Payment | null> => {
    const {
      subscriptions: [sub],
    } = await lockBillingRows(em, null, [id]);
    const before = subscriptionState(sub);
    const period = sub.currentPeriod + 1;
    const { latest, chargeInFlight } = await claimedAttempts(em, id, period);
    const attempt = latest + 1;
    if (sub.status === SubscriptionStatus.PAUSED) {
      if (chargeInFlight) return null;
      const charge = newSubscriptionCharge(em, sub, period, attempt, PaymentKind.AGAIN, null);
      // Provisional: the anchor becomes the moment Iamport takes the payment (the renewal step).
      sub.anchorAt = wholeSeconds(now);
      sub.anchorPeriod = period;
      sub.resumesAt = null;
      sub.nextMerchantUid = charge.merchantUid;
      sub.statusReason = `resuming: a new period charged now (${charge.merchantUid})`;
      await em.persistAndFlush(charge);
      return charge;
    }
    if (sub.status !== SubscriptionStatus.ACTIVE || !sub.cancelAtPeriodEnd) return null;
    if (!sub.currentPeriodEnd || sub.currentPeriodEnd.getTime() <= now.getTime()) {
      throw new BadUserInputError("id", "its period is over: it has ended, start a new subscription instead");
    }
    const next = newSubscriptionCharge(em, sub, period, attempt, PaymentKind.SCHEDULE, notBefore(sub.currentPeriodEnd, now));
    sub.cancelAtPeriodEnd = false;
    sub.cancelReason = null;
    sub.statusReason = null;
    sub.nextPaymentAt = next.scheduledAt;
    sub.nextMerchantUid = next.merchantUid;
    await em.persistAndFlush(next);
    await recordSubscriptionChange(em, sub, before);
    return next;
  });
  if (claimed?.kind === PaymentKind.AGAIN) {
    await chargeAndApply(deps, ctx, await ctx.em.findOneOrFail(Payment, { id: claimed.id }));
  } else if (claimed) {
    await registerClaimedRenewal(deps, ctx, exists, claimed.id, "renewal after an undone cancellation");
  }
  await ctx.em.refresh(exists);
  return exists;
}

/** Reconciliation: resumes PAUSED subscriptions whose resumesAt has come (Iamport's clock). Returns how many. */
export async function resumeDue(deps: SubscriptionDeps, ctx: Ctx, now: Date, limit: number): Promise<number> {
  const due = await ctx.em.find(
    Subscription,
    { status: SubscriptionStatus.PAUSED, resumesAt: { $lte: now } },
    { limit, orderBy: { id: "asc" }, fields: ["id"] },
  );
  for (const { id } of due) await resume(deps, ctx, id);
  return due.length;
}
