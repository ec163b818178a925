import { UniqueConstraintViolationException } from "@mikro-orm/core";
import { Payment, type Plan, type PriceChange, Subscription } from "../../db/entities";
import { PaymentKind, PaymentStatus, Proration, SubscriptionStatus } from "../../db/entities/enums";
import { lockBillingRows } from "../../db/repositories/billing-locks";
import { openChange } from "../../db/repositories/price-changes";
import { BadUserInputError, NotFoundError } from "../../errors";
import type { Ctx } from "../context";
import { SUBSCRIPTION_UID_PREFIX } from "../domain/merchant-uids";
import { prorate } from "../domain/proration";
import { notBefore } from "../domain/settlement";
import { proportionalParts } from "../domain/tax";
import { planTerms } from "../domain/plans";
import { inFlightConflict, openPriceChange } from "../price-change.service";
import { iamportNow, newSubscriptionCharge } from "../settlement";
import { checkUid } from "../validation";
import { claimedAttempts, registerClaimedRenewal } from "./charge";
import type { SubscriptionDeps } from "./deps";
import { refundQuote, sendClaimedRefund } from "./refunds";
import { withOpenChargesRevoked } from "./revocation";

export interface ChangePlanInput {
  id: string;
  planCode: string;
  proration?: Proration | null;
}

/**
 * Moves an ACTIVE subscription to another plan of the same interval.
 * NEXT_PERIOD: the new amount from the next renewal; CHARGE_NOW: an
 * upgrade also charges the difference for the unused days of the current
 * period now (under a deterministic merchant_uid claimed with the switch,
 * so a repeat charges nothing; declined, the switch is undone), and a
 * downgrade refunds the difference for them (claimed like a cancellation's
 * refund). Either way the pending renewal is revoked at Iamport and
 * registered again with the new amount, once: a repeat finds the plan set
 * and answers the subscription as it is.
 *
 * An upgrade (a higher amount) needs the customer's consent to the new
 * price: the customer asking for it (`by` "customer") is that consent; a
 * merchant's upgrade opens a price change that carries the plan (the
 * price-change rules: consent, notice, applied at the renewal it names)
 * and changes nothing now. While a price change is in flight, a plan
 * change is CONFLICT naming it: the price the customer was told of stands.
 */
export async function changePlan(deps: SubscriptionDeps, ctx: Ctx, input: ChangePlanInput, by: "customer" | "merchant"): Promise<Subscription> {
  const id = checkUid("id", input.id);
  const proration = input.proration ?? Proration.NEXT_PERIOD;
  if (!Object.values(Proration).includes(proration)) throw new BadUserInputError("proration", "is not CHARGE_NOW or NEXT_PERIOD");
  const exists = await ctx.em.findOne(Subscription, { id });
  if (!exists) throw new NotFoundError(`Subscription ${input.id}`);
  const plan = await deps.plans.forNewSubscription(ctx, input.planCode);
  if (exists.planCode === plan.code && exists.amount === plan.amount) return exists;
  if (exists.status !== SubscriptionStatus.ACTIVE || exists.cancelAtPeriodEnd) {
    throw new BadUserInputError("id", `only an ACTIVE subscription that is not set to cancel can change plans (this one is ${exists.status})`);
  }
  if (plan.interval !== exists.interval || plan.intervalCount !== exists.intervalCount) {
    throw new BadUserInputError("planCode", `bills every ${plan.intervalCount} ${plan.interval}, not every ${exists.intervalCount} ${exists.interval}: only a plan of the same interval can replace it`);
  }
  const merchantUpgrade = by === "merchant" && plan.amount > exists.amount;
  if (merchantUpgrade && proration === Proration.CHARGE_NOW) {
    throw new BadUserInputError(
      "proration",
      `cannot be CHARGE_NOW for a merchant key's upgrade: plan ${plan.code} costs more than the ${exists.amount} won the customer agreed to, so it waits for the customer's consent and starts at a renewal (NEXT_PERIOD); with the customer's own token the request is the consent and CHARGE_NOW charges now`,
    );
  }
  const inFlight = await openChange(ctx.em, id);
  // A merchant's upgrade repeated answers the change it opened.
  if (merchantUpgrade && inFlight?.planCode === plan.code) return exists;
  if (inFlight) throw inFlightConflict(id, inFlight);
  const now = await iamportNow(deps);
  if (merchantUpgrade) return askForPlanConsent(deps, ctx, exists, plan, now);
  const tz = deps.config.billingTimeZone;
  const share = (diff: number, sub: Subscription) =>
    sub.currentPeriodStart && sub.currentPeriodEnd ? prorate({ start: sub.currentPeriodStart, end: sub.currentPeriodEnd }, now, diff, tz).proratedRefund : 0;
  const from = { planCode: exists.planCode ?? null, name: exists.name, amount: exists.amount, taxFreeAmount: exists.taxFreeAmount, vatAmount: exists.vatAmount ?? null };

  if (proration === Proration.CHARGE_NOW && plan.amount > exists.amount) {
    // The difference is claimed with the switch, under the lock: a repeat finds the plan set.
    const charge = await ctx.em.transactional(async (em): Promise<Payment | null | "changed"> => {
      const {
        subscriptions: [sub],
      } = await lockBillingRows(em, null, [id]);
      if (sub.planCode === plan.code) return "changed";
      const open = await openChange(em, id);
      if (open) throw inFlightConflict(id, open);
      const amount = share(plan.amount - sub.amount, sub);
      Object.assign(sub, planTerms(plan));
      if (amount <= 0) return null;
      const prefix = `${SUBSCRIPTION_UID_PREFIX}${id}_p${sub.currentPeriod}_c`;
      const n = (await em.count(Payment, { merchantUid: { $like: `${prefix}%` } })) + 1;
      const row = em.create(Payment, {
        merchantUid: `${prefix}${n}`,
        customerUid: sub.customerUid,
        name: `${plan.name}: the rest of the current period`,
        amount,
        // Taxed as the plan it pays for; listed with the subscription's payments, but no renewal of it.
        ...proportionalParts(plan, amount),
        adjustsSubscriptionId: sub.id,
        kind: PaymentKind.AGAIN,
        status: PaymentStatus.PENDING,
      });
      await em.persistAndFlush(row);
      return row;
    });
    if (charge === "changed") return exists;
    if (charge) {
      const paid = await deps.payments.executeAgain(ctx, await ctx.em.findOneOrFail(Payment, { id: charge.id }));
      if (paid.status !== PaymentStatus.PAID) {
        await ctx.em.transactional(async (em) => {
          const {
            subscriptions: [sub],
          } = await lockBillingRows(em, null, [id]);
          if (sub.planCode === plan.code) Object.assign(sub, from);
        });
        throw new BadUserInputError("planCode", `the difference of ${paid.amount} won for the rest of the period was declined: ${paid.failReason ?? paid.status}`);
      }
    }
  }

  // The pending renewal, revoked at Iamport with no lock held, then registered again with the new amount.
  const race: { change: PriceChange | null } = { change: null };
  const next = await withOpenChargesRevoked(deps, ctx, exists, async (tx, sub, { open, ran, settleRan }): Promise<Payment | null> => {
    const em = tx.em;
    if (ran.length > 0) await settleRan();
    const revokedAt = open.find((p) => p.status === PaymentStatus.REVOKED && p.period === sub.currentPeriod + 1)?.scheduledAt;
    // A price change opened while Iamport was asked: nothing of the plan is taken, the renewal is registered
    // again with the terms it had, and the change is refused after.
    race.change = sub.planCode === plan.code ? null : await openChange(em, id);
    const switching = !race.change;
    if (switching && proration === Proration.CHARGE_NOW && plan.amount < sub.amount && sub.planCode !== plan.code) {
      const quote = await refundQuote(deps, tx, sub, now);
      const amount = quote ? Math.min(share(sub.amount - plan.amount, sub), quote.balance) : 0;
      if (quote && amount > 0) {
        sub.refundClaim = { merchantUid: quote.payment.merchantUid, amount, balance: quote.balance, reason: `plan changed to ${plan.code}` };
      }
    }
    if (switching) Object.assign(sub, planTerms(plan));
    if (sub.status !== SubscriptionStatus.ACTIVE || sub.cancelAtPeriodEnd || !sub.currentPeriodEnd) {
      await em.flush();
      return null;
    }
    const period = sub.currentPeriod + 1;
    const { latest } = await claimedAttempts(em, id, period);
    const next = newSubscriptionCharge(em, sub, period, latest + 1, PaymentKind.SCHEDULE, notBefore(revokedAt ?? sub.currentPeriodEnd, now));
    sub.nextPaymentAt = next.scheduledAt;
    sub.nextMerchantUid = next.merchantUid;
    await em.persistAndFlush(next);
    return next;
  });
  if (next) await registerClaimedRenewal(deps, ctx, exists, next.id, "renewal at the new plan's amount");
  if (race.change) throw inFlightConflict(id, race.change);
  return sendClaimedRefund(deps, ctx, exists);
}

/**
 * A merchant's upgrade: a price change to the plan's amount that carries
 * the plan, opened under the subscription's lock like requestPriceChange's,
 * waiting for the customer's consent (PriceChangeService applies it).
 * A repeat answers the subscription with the change it opened.
 */
async function askForPlanConsent(deps: SubscriptionDeps, ctx: Ctx, exists: Subscription, plan: Plan, now: Date): Promise<Subscription> {
  try {
    await ctx.em.transactional(async (em) => {
      const {
        subscriptions: [sub],
      } = await lockBillingRows(em, null, [exists.id]);
      if (sub.status !== SubscriptionStatus.ACTIVE || sub.cancelAtPeriodEnd || sub.currentPeriod < 1) {
        throw new BadUserInputError("id", `only an ACTIVE subscription that is not set to cancel can change plans (this one is ${sub.status})`);
      }
      const open = await openChange(em, sub.id);
      if (open?.planCode === plan.code) return;
      await openPriceChange(em, sub, { newAmount: plan.amount, planCode: plan.code, effectiveAt: null }, now, deps.config.billingTimeZone);
      await em.flush();
    });
  } catch (err) {
    if (!(err instanceof UniqueConstraintViolationException)) throw err;
    // Another request opened a change meanwhile: the same plan's (a repeat) is answered, another is CONFLICT.
    const open = await openChange(ctx.em, exists.id);
    if (open?.planCode !== plan.code) throw open ? inFlightConflict(exists.id, open) : err;
  }
  await ctx.em.refresh(exists);
  return exists;
}
