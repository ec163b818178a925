import { Payment, type Plan, Subscription } from "../../db/entities";
import { PaymentKind, PaymentStatus, Proration, SubscriptionStatus } from "../../db/entities/enums";
import { lockBillingRows } from "../../db/repositories/billing-locks";
import { BadUserInputError, ForbiddenError, NotFoundError } from "../../errors";
import type { Ctx } from "../context";
import { SUBSCRIPTION_UID_PREFIX } from "../domain/merchant-uids";
import { prorate } from "../domain/proration";
import { notBefore } from "../domain/settlement";
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
 * merchant's upgrade is refused with FORBIDDEN, as the price-change rules
 * (requestPriceChange) are the one way a merchant raises a price.
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
  if (by === "merchant" && plan.amount > exists.amount) {
    throw new ForbiddenError(
      `Plan ${plan.code} costs ${plan.amount} won, more than the ${exists.amount} won the customer agreed to: a merchant raises the price with requestPriceChange (the customer's consent), or the customer changes the plan with their own customer token`,
    );
  }
  const now = await iamportNow(deps);
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
  const next = await withOpenChargesRevoked(deps, ctx, exists, async (tx, sub, { open, ran, settleRan }): Promise<Payment | null> => {
    const em = tx.em;
    if (ran.length > 0) await settleRan();
    const revokedAt = open.find((p) => p.status === PaymentStatus.REVOKED && p.period === sub.currentPeriod + 1)?.scheduledAt;
    if (proration === Proration.CHARGE_NOW && plan.amount < sub.amount && sub.planCode !== plan.code) {
      const quote = await refundQuote(deps, tx, sub, now);
      const amount = quote ? Math.min(share(sub.amount - plan.amount, sub), quote.balance) : 0;
      if (quote && amount > 0) {
        sub.refundClaim = { merchantUid: quote.payment.merchantUid, amount, balance: quote.balance, reason: `plan changed to ${plan.code}` };
      }
    }
    Object.assign(sub, planTerms(plan));
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
  return sendClaimedRefund(deps, ctx, exists);
}

/** What a subscription takes from its plan when it changes to it. */
function planTerms(plan: Plan): Pick<Subscription, "planCode" | "name" | "amount" | "taxFreeAmount" | "vatAmount"> {
  return { planCode: plan.code, name: plan.name, amount: plan.amount, taxFreeAmount: plan.taxFreeAmount, vatAmount: plan.vatAmount ?? null };
}
