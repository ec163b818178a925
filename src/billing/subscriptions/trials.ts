import { Subscription, type Payment } from "../../db/entities";
import { BillingInterval, PaymentKind, SubscriptionStatus } from "../../db/entities/enums";
import { lockBillingRows } from "../../db/repositories/billing-locks";
import { BadUserInputError, NotFoundError } from "../../errors";
import type { Ctx } from "../context";
import { periodOf } from "../domain/billing-dates";
import { wholeSeconds } from "../domain/settlement";
import { iamportNow, newSubscriptionCharge } from "../settlement";
import { checkUid } from "../validation";
import { endUnderLocks } from "./cancel";
import type { SubscriptionDeps } from "./deps";

/**
 * Records the customer's consent to be charged when the trial ends (`by`:
 * the customer's own token, or a merchant key recording consent it
 * collected). Only consent given within CONSENT_WINDOW_DAYS before the
 * trial's end counts (전자상거래법 §13⑥, 시행령 §20-2): earlier, and after the
 * end, it is refused. The first charge is claimed for the trial's end in the
 * same transaction, under the subscription's lock (so the sweep that ends
 * unconsented trials sees either the consent or nothing), and registered
 * with Iamport after the commit; a registration that does not finish is
 * completed by reconciliation. Consenting again changes nothing.
 */
export async function consentToTrialConversion(deps: SubscriptionDeps, ctx: Ctx, id: string, by: "customer" | "merchant"): Promise<Subscription> {
  const subId = checkUid("subscriptionId", id);
  const now = await iamportNow(deps);
  const claimed = await ctx.em.transactional(async (em): Promise<string | null> => {
    const {
      subscriptions: [sub],
    } = await lockBillingRows(em, null, [subId]);
    if (!sub) throw new NotFoundError(`Subscription ${id}`);
    if (sub.conversionConsentAt) return null;
    if (sub.status !== SubscriptionStatus.TRIALING || !sub.trialEnd) {
      throw new BadUserInputError("subscriptionId", `is not in a free trial (it is ${sub.status})`);
    }
    const end = sub.trialEnd;
    if (now.getTime() >= end.getTime()) {
      throw new BadUserInputError("subscriptionId", `names a trial that ended at ${end.toISOString()}: consent can no longer convert it`);
    }
    const opens = consentWindowOpens(end);
    if (now.getTime() < opens.getTime()) {
      throw new BadUserInputError(
        "subscriptionId",
        `names a trial that ends at ${end.toISOString()}: consent to paid renewals counts only when given within the ${CONSENT_WINDOW_DAYS} days ` +
          `before it ends (전자상거래법 §13⑥), from ${opens.toISOString()}; ask the customer again then`,
      );
    }
    sub.conversionConsentAt = now;
    sub.conversionConsentBy = by;
    sub.statusReason = trialReason(end, "consented");
    let first: Payment | null = null;
    if (!sub.nextMerchantUid) {
      first = newSubscriptionCharge(em, sub, 1, 1, PaymentKind.SCHEDULE, end);
      sub.nextPaymentAt = end;
      sub.nextMerchantUid = first.merchantUid;
      em.persist(first);
    }
    await em.flush();
    return first?.id ?? null;
  });
  if (claimed) {
    try {
      await deps.settlement.registerUnregistered(ctx, claimed);
    } catch (err) {
      // The claim stays PENDING and reconciliation registers it (before the trial's end, or moved just after it).
      ctx.log.warn({ subscriptionId: subId, err: (err as Error).message }, "trial's first charge not registered yet; reconciliation will retry");
    }
  }
  return ctx.em.findOneOrFail(Subscription, { id: subId }, { refresh: true });
}

/**
 * Reconciliation's end of trials: a TRIALING subscription whose trial is
 * over (by Iamport's clock) with no first charge claimed (no consent was
 * recorded) is CANCELED under its lock, with the reason, and
 * subscription.canceled recorded with it. Nothing was scheduled at Iamport
 * for it, so nothing is left there. Returns how many ended.
 */
export async function endTrials(ctx: Ctx, now: Date, limit: number): Promise<number> {
  const due = await ctx.em.find(
    Subscription,
    { status: SubscriptionStatus.TRIALING, trialEnd: { $lte: now }, nextMerchantUid: null },
    { orderBy: { trialEnd: "asc" }, limit },
  );
  return endUnderLocks(
    ctx,
    due.map((s) => s.id),
    now,
    (sub) => {
      const over = !!sub.trialEnd && sub.trialEnd.getTime() <= now.getTime();
      if (sub.status !== SubscriptionStatus.TRIALING || !over || sub.nextMerchantUid) return null;
      return `the free trial ended at ${sub.trialEnd!.toISOString()} without the customer's consent to paid renewals: nothing was charged`;
    },
  );
}

/** How long before a trial's end consent to its conversion counts (전자상거래법 §13⑥, 시행령 §20-2: 30 days). */
export const CONSENT_WINDOW_DAYS = 30;

/** The first moment consent to converting a trial that ends at `trialEnd` counts. */
export function consentWindowOpens(trialEnd: Date): Date {
  return new Date(trialEnd.getTime() - CONSENT_WINDOW_DAYS * 86_400_000);
}

/** The end of a trial of `days` days started at `now`: whole days in the billing time zone, whole seconds as Iamport keeps them. */
export function trialEndFrom(now: Date, days: number, timeZone: string): Date {
  return wholeSeconds(periodOf(wholeSeconds(now), BillingInterval.DAY, days, 1, timeZone).end);
}

/** statusReason of a trial. */
export function trialReason(trialEnd: Date, consent: "awaiting" | "consented" | "not-required"): string {
  const end = trialEnd.toISOString();
  if (consent === "awaiting") {
    return `free trial until ${end}: it turns paid only with the customer's consent, given within the ${CONSENT_WINDOW_DAYS} days before it ends (consentToTrialConversion); without it the subscription ends then, with nothing charged`;
  }
  if (consent === "consented") return `free trial until ${end}; the customer consented to paid renewals from then, and the first charge is scheduled for that moment`;
  return `free trial until ${end}; the first charge is scheduled for that moment`;
}
