import { UniqueConstraintViolationException } from "@mikro-orm/core";
import { withTransaction } from "../../events/present";
import { Subscription, type Payment } from "../../db/entities";
import { LIVE_SUBSCRIPTION_STATUSES, PaymentKind, SubscriptionStatus, type BillingInterval } from "../../db/entities/enums";
import { BadUserInputError, ConflictError, OutcomeUnknownError } from "../../errors";
import { requireActiveCard } from "../card.service";
import { afterIamport, derivedId, randomId, type Ctx } from "../context";
import { wholeSeconds } from "../domain/settlement";
import { recordSubscriptionChange, subscriptionState } from "../events";
import { iamportNow, newSubscriptionCharge } from "../settlement";
import { checkAmount, checkFuture, checkInterval, checkIntervalCount, checkTaxParts, checkText, checkTrialDays, checkUid } from "../validation";
import { chargeAndApply, leftToReconciliation } from "./charge";
import type { SubscriptionDeps } from "./deps";
import { trialEndFrom, trialReason } from "./trials";

export interface StartSubscriptionInput {
  customerUid: string;
  /** Name, amount, interval and count come from this plan when it is given. */
  planCode?: string | null;
  name?: string | null;
  amount?: number | null;
  interval?: BillingInterval | null;
  intervalCount?: number | null;
  startAt?: Date | null;
  /** Days of free trial (overrides the plan's): nothing charged until its end, and then only with consent. */
  trialDays?: number | null;
  taxFreeAmount?: number | null;
  vatAmount?: number | null;
  /** Start it even while the customer has a live subscription of the same name. */
  allowDuplicate?: boolean | null;
}

/** What a new subscription charges, from its plan or the explicit fields. */
interface Terms {
  planCode: string | null;
  name: string;
  amount: number;
  interval: BillingInterval;
  intervalCount: number;
  trialDays: number;
  /** The plan's tax-free and VAT parts (0 and null without a plan). */
  taxFreeAmount: number;
  vatAmount: number | null;
}

/**
 * Starts a subscription, on a plan's terms (planCode) or explicit ones.
 * Without startAt the first period is charged now and, when paid, the next
 * one is scheduled; with startAt the first charge is scheduled. With a
 * free trial (trialDays, or the plan's) it is TRIALING until trialEnd and
 * nothing is charged: the first charge is claimed for trialEnd when the
 * customer consents (consentToTrialConversion), or at once when
 * TRIAL_CONVERSION_CONSENT=not_required.
 * A second live subscription of the same name for the customer is refused
 * (CONFLICT naming the first) unless allowDuplicate: the row is inserted
 * before Iamport is asked anything, and a partial unique index decides
 * between two starts racing each other. Under an Idempotency-Key, the
 * re-run of a request whose first attempt ended without a stored answer
 * answers the subscription that attempt created, as it is now (its first
 * charge, if still PENDING, is settled by reconciliation under its own
 * merchant_uid): it never starts or charges a second one.
 */
export async function start(deps: SubscriptionDeps, ctx: Ctx, input: StartSubscriptionInput): Promise<Subscription> {
  const customerUid = checkUid("customerUid", input.customerUid);
  const terms = await termsOf(deps, ctx, input);
  const { name, amount, interval, intervalCount } = terms;
  const trialDays = input.trialDays !== null && input.trialDays !== undefined ? checkTrialDays("trialDays", input.trialDays) : terms.trialDays;
  if (trialDays > 0 && input.startAt) throw new BadUserInputError("startAt", "cannot be given with a free trial: the first charge is taken when the trial ends");
  // A plan's parts unless the request gives its own.
  const tax = checkTaxParts("", amount, input.taxFreeAmount || terms.taxFreeAmount, input.vatAmount ?? terms.vatAmount);
  const startAt = input.startAt ? checkFuture("startAt", input.startAt) : null;
  // A trial is timed by Iamport's clock, which runs the schedules (and, in tests, the emulator's).
  const trialEnd = trialDays > 0 ? trialEndFrom(await iamportNow(deps), trialDays, deps.config.billingTimeZone) : null;
  // With consent required nothing is scheduled before the consent (consentToTrialConversion), so a
  // trial that ends without it leaves nothing at Iamport to revoke.
  const awaitsConsent = trialEnd !== null && deps.config.lifecycle.trialConversionConsent === "required";
  const firstAt = startAt ? wholeSeconds(startAt) : trialEnd;
  const allowDuplicate = input.allowDuplicate === true;
  const requestRef = derivedId(ctx) ?? null;
  await requireActiveCard(ctx, customerUid);
  if (requestRef) {
    const earlier = await ctx.em.findOne(Subscription, { requestRef });
    if (earlier) return earlier;
  }
  if (!allowDuplicate) await refuseLiveDuplicate(ctx, customerUid, name);

  const sub = ctx.em.create(Subscription, {
    // Time-ordered (base36 milliseconds, then random): lists sort newest first by id.
    id: `s${Date.now().toString(36).padStart(9, "0")}${randomId(5)}`,
    customerUid,
    name,
    amount,
    ...tax,
    interval,
    intervalCount,
    planCode: terms.planCode,
    // Whole seconds: Iamport schedules are in UNIX seconds, and period boundaries must match them.
    // Without startAt this is provisional: the anchor becomes the moment Iamport takes the first payment.
    anchorAt: firstAt ?? wholeSeconds(new Date()),
    status: trialEnd ? SubscriptionStatus.TRIALING : startAt ? SubscriptionStatus.ACTIVE : SubscriptionStatus.INCOMPLETE,
    statusReason: trialEnd ? trialReason(trialEnd, awaitsConsent ? "awaiting" : "not-required") : startAt ? "first payment scheduled" : "first payment in progress",
    trialEnd,
    allowDuplicate,
    requestRef,
  });
  const first = awaitsConsent ? null : newSubscriptionCharge(ctx.em, sub, 1, 1, firstAt ? PaymentKind.SCHEDULE : PaymentKind.AGAIN, firstAt);
  sub.nextPaymentAt = first?.scheduledAt ?? null;
  sub.nextMerchantUid = first?.merchantUid ?? null;
  try {
    // A subscription started with startAt (ACTIVE) or a trial (TRIALING) is started from this insert: its
    // subscription.started commits with the row (the outbox), so no crash can leave one without the other.
    await withTransaction(ctx.em, async () => {
      await ctx.em.persistAndFlush(first ? [sub, first] : [sub]);
      if (firstAt) await recordSubscriptionChange(ctx.em, sub, null);
    });
  } catch (err) {
    if (!(err instanceof UniqueConstraintViolationException)) throw err;
    // Another start got there first (nothing was sent to Iamport for this one).
    ctx.em.clear();
    const constraint = (err as { constraint?: string }).constraint;
    if (requestRef && constraint === "subscriptions_request_ref_unique") {
      const earlier = await ctx.em.findOne(Subscription, { requestRef });
      if (earlier) return earlier;
    }
    if (constraint === "subscriptions_live_name_unique") {
      await refuseLiveDuplicate(ctx, customerUid, name);
      throw new ConflictError(`A live subscription named ${JSON.stringify(name)} was being started for customer ${customerUid} at the same time`);
    }
    throw err;
  }

  // A trial awaiting consent has nothing to schedule yet.
  if (!first) return sub;
  if (firstAt) {
    await scheduleFirst(deps, ctx, sub, first, trialEnd ? "trialDays" : "startAt");
    return sub;
  }
  let unconfirmed = false;
  try {
    await chargeAndApply(deps, ctx, first);
  } catch (err) {
    // Not sent (UPSTREAM_UNAVAILABLE) or maybe charged (OUTCOME_UNKNOWN): the subscription stays
    // INCOMPLETE, and reconciliation settles (or makes) the first charge under its merchant_uid.
    if (!leftToReconciliation(err)) throw err;
    unconfirmed = true;
  }
  // The first charge may have been made: from here a failure must not read as "nothing happened",
  // and starting again would create (and charge) a second subscription.
  return afterIamport(
    ctx,
    first.merchantUid,
    async () => {
      if (unconfirmed) {
        // Only while nothing else settled it meanwhile (the charge's webhook may have arrived).
        await ctx.em.nativeUpdate(
          Subscription,
          { id: sub.id, status: SubscriptionStatus.INCOMPLETE },
          { statusReason: `first payment not confirmed yet: it will be settled with ${deps.provider.label} by reconciliation` },
        );
      }
      await ctx.em.refresh(sub);
      return sub;
    },
    { unknown: (cause) => startUnknown(sub, first, cause) },
  );
}

/**
 * What a new subscription charges: from its plan when planCode is given
 * (explicit fields may then be omitted, and when given must match the
 * plan's), else from the explicit fields, which are then required.
 */
async function termsOf(deps: SubscriptionDeps, ctx: Ctx, input: StartSubscriptionInput): Promise<Terms> {
  if (input.planCode !== null && input.planCode !== undefined) {
    const plan = await deps.plans.forNewSubscription(ctx, input.planCode);
    const given: [keyof StartSubscriptionInput, unknown][] = [
      ["name", plan.name],
      ["amount", plan.amount],
      ["interval", plan.interval],
    ];
    for (const [field, value] of given) {
      if (input[field] !== null && input[field] !== undefined && input[field] !== value) {
        throw new BadUserInputError(field, `differs from plan ${plan.code} (${JSON.stringify(value)}): omit it to take the plan's`);
      }
    }
    // intervalCount has a GraphQL default of 1: only a value other than the plan's and 1 is a contradiction.
    if (input.intervalCount != null && input.intervalCount !== 1 && input.intervalCount !== plan.intervalCount) {
      throw new BadUserInputError("intervalCount", `differs from plan ${plan.code} (${plan.intervalCount}): omit it to take the plan's`);
    }
    return { planCode: plan.code, name: plan.name, amount: plan.amount, interval: plan.interval, intervalCount: plan.intervalCount, trialDays: plan.trialDays, taxFreeAmount: plan.taxFreeAmount, vatAmount: plan.vatAmount ?? null };
  }
  const required = <T>(field: string, v: T | null | undefined): T => {
    if (v === null || v === undefined) throw new BadUserInputError(field, "is required when no planCode is given");
    return v;
  };
  return {
    planCode: null,
    name: checkText("name", required("name", input.name), 200),
    amount: checkAmount("amount", required("amount", input.amount), deps.config.maxAmount),
    interval: checkInterval("interval", required("interval", input.interval)),
    intervalCount: checkIntervalCount("intervalCount", input.intervalCount),
    trialDays: 0,
    taxFreeAmount: 0,
    vatAmount: null,
  };
}

/** CONFLICT naming the customer's live subscription of this name, if there is one. */
async function refuseLiveDuplicate(ctx: Ctx, customerUid: string, name: string): Promise<void> {
  const live = await ctx.em.findOne(Subscription, { customerUid, name, status: { $in: LIVE_SUBSCRIPTION_STATUSES } }, { orderBy: { id: "asc" } });
  if (!live) return;
  throw new ConflictError(
    `Customer ${customerUid} already has a live subscription named ${JSON.stringify(name)}: ${live.id} (${live.status}). Cancel it first, or pass allowDuplicate: true to start another`,
    { subscriptionId: live.id },
  );
}

/**
 * Registers the first payment of a subscription started with startAt. Iamport
 * refusing it (a time in its past, an unknown billing key) refuses the start;
 * an unknown outcome keeps the row PENDING for reconciliation.
 */
async function scheduleFirst(deps: SubscriptionDeps, ctx: Ctx, sub: Subscription, first: Payment, field: string): Promise<void> {
  try {
    await deps.schedules.register(ctx, sub.customerUid, [first], { keepRowsOnRefusal: true });
  } catch (err) {
    if (err instanceof BadUserInputError) {
      // Its subscription.started is already out (it committed with the row): the ledger only grows,
      // so the removal is recorded as the subscription's end, in the removal's transaction.
      await withTransaction(ctx.em, async () => {
        const before = subscriptionState(sub);
        sub.status = SubscriptionStatus.CANCELED;
        sub.canceledAt = new Date();
        sub.nextPaymentAt = null;
        sub.nextMerchantUid = null;
        sub.statusReason = `canceled: the first payment could not be scheduled (${err.message})`;
        await recordSubscriptionChange(ctx.em, sub, before);
        ctx.em.remove([first, sub]);
        await ctx.em.flush();
      });
      throw new BadUserInputError(field, `could not be scheduled: ${err.message}`);
    }
    if (!leftToReconciliation(err)) throw err;
    sub.statusReason = `first payment not registered with ${deps.provider.label} yet: reconciliation will register it`;
    await afterIamport(ctx, first.merchantUid, () => ctx.em.flush(), { unknown: (cause) => startUnknown(sub, first, cause) });
  }
}

/**
 * The first charge of a new subscription may have been made but cannot be
 * confirmed: starting again would create and charge a second subscription,
 * so the answer names the subscription to query instead of inviting a retry.
 */
function startUnknown(sub: Subscription, first: Payment, cause: unknown): OutcomeUnknownError {
  return new OutcomeUnknownError(first.merchantUid, {
    cause,
    advice: `Do not start the subscription again: query subscription ${sub.id} later`,
    details: { subscriptionId: sub.id, retryable: false },
  });
}
