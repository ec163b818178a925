import { Payment, Subscription } from "../../db/entities";
import type { EntityManager } from "@mikro-orm/postgresql";
import { PaymentKind, PaymentStatus, SubscriptionStatus } from "../../db/entities/enums";
import { OutcomeUnknownError, toAppError } from "../../errors";
import { IamportNotFoundError, IamportRefusedError, type ProviderPayment } from "../../provider/port";
import { afterIamport, outcomeUnknown, upstreamError, type Ctx } from "../context";
import { againRequest } from "../payment.service";
import type { SubscriptionDeps } from "./deps";

/**
 * Charges a PENDING subscription payment now (same merchant_uid, so never
 * twice) and records the outcome together with the renewal step, in one
 * transaction under the payment's row lock: a crash can never leave a paid
 * first charge without its next schedule, and a webhook for the same charge
 * arriving meanwhile acts once between them.
 */
export async function chargeAndApply(deps: SubscriptionDeps, ctx: Ctx, payment: Payment): Promise<void> {
  const sub = payment.subscription ? await ctx.em.findOne(Subscription, { id: payment.subscription.id }, { refresh: true }) : null;
  if (sub?.status === SubscriptionStatus.CANCELED) {
    // Canceled before the charge was ever made (its outcome was unknown): do not charge it now.
    await deps.settlement.settleUnmade(ctx, payment.id, "the subscription was canceled before this charge was made");
    return;
  }
  let ip: ProviderPayment;
  // When Iamport was asked: verification asks again if the row changed after that.
  const askedAt = new Date();
  try {
    ip = await deps.provider.charge(againRequest(payment), { requestId: ctx.requestId });
  } catch (err) {
    // Never executed (no token, refused connection, 401): nothing was charged.
    if (!(err instanceof IamportRefusedError) && !outcomeUnknown(err)) throw upstreamError(err, "charge");
    // From here Iamport may have charged: any failure is OUTCOME_UNKNOWN (afterIamport).
    await afterIamport(ctx, payment.merchantUid, () => settleCharge(deps, ctx, payment, err));
    return;
  }
  await afterIamport(ctx, payment.merchantUid, () => deps.settlement.settleAnswer(ctx, ip, { askedAt }));
}

/** Settles a subscription charge whose `again` was refused or whose answer was lost. */
async function settleCharge(deps: SubscriptionDeps, ctx: Ctx, payment: Payment, err: unknown): Promise<void> {
  const askedAt = new Date();
  if (err instanceof IamportRefusedError) {
    // Refused outright (no billing key, order already paid...): nothing was charged now.
    // An order Iamport already has a payment for is settled from that payment instead.
    const existing = await findAtIamport(deps, ctx, payment.merchantUid);
    if (existing) {
      await deps.settlement.settleAnswer(ctx, existing, { askedAt });
      return;
    }
    await deps.settlement.settleUnmade(ctx, payment.id, err.iamportMessage || `${err.provider} refused the charge`);
    return;
  }
  ctx.log.warn({ merchantUid: payment.merchantUid, err: (err as Error).message }, "charge outcome unknown; settling by merchant_uid");
  const found = await findAtIamport(deps, ctx, payment.merchantUid);
  // Not found yet: the payment stays PENDING and reconciliation settles it.
  if (!found) throw new OutcomeUnknownError(payment.merchantUid, { cause: err });
  await deps.settlement.settleAnswer(ctx, found, { askedAt });
}

/**
 * The attempts already claimed for a subscription's `period`: the highest
 * attempt number (0 for none; a new claim takes a higher one, so a new
 * merchant_uid), and whether an immediate charge of it is still in flight.
 */
export async function claimedAttempts(em: EntityManager, subscriptionId: string, period: number): Promise<{ latest: number; chargeInFlight: boolean }> {
  const attempts = await em.find(Payment, { subscription: subscriptionId, period }, { orderBy: { attempt: "desc" } });
  return {
    latest: attempts[0]?.attempt ?? 0,
    chargeInFlight: attempts.some((p) => p.kind === PaymentKind.AGAIN && p.status === PaymentStatus.PENDING),
  };
}

/**
 * Whether a call to Iamport ended without its answer (not sent, or sent and
 * unanswered): the row claimed before it stays PENDING, and reconciliation
 * finishes it under the same merchant_uid.
 */
export function leftToReconciliation(err: unknown): boolean {
  const code = toAppError(err).code;
  return code === "UPSTREAM_UNAVAILABLE" || code === "OUTCOME_UNKNOWN";
}

/**
 * Registers with Iamport, after the commit, a renewal a mutation claimed
 * under the locks. Not registered yet (leftToReconciliation): reconciliation
 * registers it; anything else is thrown.
 */
export async function registerClaimedRenewal(deps: SubscriptionDeps, ctx: Ctx, sub: Subscription, paymentId: string, what: string): Promise<void> {
  try {
    await deps.schedules.register(ctx, sub.customerUid, [await ctx.em.findOneOrFail(Payment, { id: paymentId })]);
  } catch (err) {
    if (!leftToReconciliation(err)) throw err;
    ctx.log.warn({ subscriptionId: sub.id, err: (err as Error).message }, `${what} not registered yet; reconciliation will`);
  }
}

/** The payment Iamport has for an order, or null when it has none. */
export async function findAtIamport(deps: SubscriptionDeps, ctx: Ctx, merchantUid: string): Promise<ProviderPayment | null> {
  try {
    return await deps.provider.findByOrder(merchantUid, { requestId: ctx.requestId });
  } catch (err) {
    if (err instanceof IamportNotFoundError) return null;
    throw upstreamError(err, `payment ${merchantUid}`);
  }
}
