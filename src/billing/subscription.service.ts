import { UniqueConstraintViolationException, type FilterQuery } from "@mikro-orm/core";
import { withTransaction } from "../events/present";
import { recordSubscriptionChange, subscriptionState } from "./events";
import { Payment, type Plan, type PriceChange, Subscription } from "../db/entities";
import { BillingInterval, CancellationRefund, LIVE_SUBSCRIPTION_STATUSES, Proration, PaymentKind, PaymentStatus, SubscriptionStatus } from "../db/entities/enums";
import { BadUserInputError, ConflictError, NotFoundError, OutcomeUnknownError, toAppError } from "../errors";
import { IamportNotFoundError, IamportRefusedError, type ProviderPayment, type ProviderSchedule } from "../provider/port";
import { lockBillingRows } from "../db/repositories/billing-locks";
import { openChange } from "../db/repositories/price-changes";
import { OPEN_CHARGE_STATUSES } from "./domain/transitions";
import { notBefore, wholeSeconds } from "./domain/settlement";
import { SUBSCRIPTION_UID_PREFIX } from "./domain/merchant-uids";
import { periodOf } from "./domain/billing-dates";
import { requireActiveCard } from "./card.service";
import { afterIamport, BillingDeps, Ctx, derivedId, withEm, outcomeUnknown, randomId, upstreamError } from "./context";
import { decodeCursor, encodeCursor, Page } from "./pagination";
import { againRequest, checkFirst, type PaymentService } from "./payment.service";
import { prorate, withinWithdrawalWindow, type ProratedRefund } from "./domain/proration";
import type { ScheduleRegistrar } from "./payments/schedules";
import { iamportNow, newSubscriptionCharge, type Settlement } from "./settlement";
import { planTerms, type PlanService } from "./plan.service";
import { inFlightConflict, openPriceChange } from "./price-change.service";
import { proportionalParts } from "./domain/tax";
import { checkAmount, checkFuture, checkInterval, checkIntervalCount, checkTaxParts, checkText, checkTrialDays, checkUid, optionalText } from "./validation";

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

export interface CancelSubscriptionInput {
  id: string;
  atPeriodEnd?: boolean | null;
  reason?: string | null;
  /** Refund the current period's payment (its unused days, or all of it); the subscription then ends now. */
  refund?: CancellationRefund | null;
}

export interface ChangePlanInput {
  id: string;
  planCode: string;
  proration?: Proration | null;
}

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

/** What Iamport says of a charge a revocation was asked for (SubscriptionService.revokeAtIamport). */
export type AtIamport =
  | { kind: "revoked" }
  | { kind: "never-registered" }
  | { kind: "ran"; impUid: string | null; answer?: ProviderPayment; askedAt?: Date };

/** Subscriptions: start, renew on the schedule webhook, dun, cancel. */
export class SubscriptionService {
  constructor(
    private readonly deps: BillingDeps,
    private readonly settlement: Settlement,
    private readonly schedules: ScheduleRegistrar,
    private readonly plans: PlanService,
    private readonly payments: PaymentService,
  ) {}

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
  async start(ctx: Ctx, input: StartSubscriptionInput): Promise<Subscription> {
    const customerUid = checkUid("customerUid", input.customerUid);
    const terms = await this.terms(ctx, input);
    const { name, amount, interval, intervalCount } = terms;
    const trialDays = input.trialDays !== null && input.trialDays !== undefined ? checkTrialDays("trialDays", input.trialDays) : terms.trialDays;
    if (trialDays > 0 && input.startAt) throw new BadUserInputError("startAt", "cannot be given with a free trial: the first charge is taken when the trial ends");
    // A plan's parts unless the request gives its own.
    const tax = checkTaxParts("", amount, input.taxFreeAmount || terms.taxFreeAmount, input.vatAmount ?? terms.vatAmount);
    const startAt = input.startAt ? checkFuture("startAt", input.startAt) : null;
    // A trial is timed by Iamport's clock, which runs the schedules (and, in tests, the emulator's).
    const trialEnd = trialDays > 0 ? trialEndFrom(await iamportNow(this.deps), trialDays, this.deps.config.billingTimeZone) : null;
    // With consent required nothing is scheduled before the consent (consentToTrialConversion), so a
    // trial that ends without it leaves nothing at Iamport to revoke.
    const awaitsConsent = trialEnd !== null && this.deps.config.lifecycle.trialConversionConsent === "required";
    const firstAt = startAt ? wholeSeconds(startAt) : trialEnd;
    const allowDuplicate = input.allowDuplicate === true;
    const requestRef = derivedId(ctx) ?? null;
    await requireActiveCard(ctx, customerUid);
    if (requestRef) {
      const earlier = await ctx.em.findOne(Subscription, { requestRef });
      if (earlier) return earlier;
    }
    if (!allowDuplicate) await this.refuseLiveDuplicate(ctx, customerUid, name);

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
        await this.refuseLiveDuplicate(ctx, customerUid, name);
        throw new ConflictError(`A live subscription named ${JSON.stringify(name)} was being started for customer ${customerUid} at the same time`);
      }
      throw err;
    }

    // A trial awaiting consent has nothing to schedule yet.
    if (!first) return sub;
    if (firstAt) {
      await this.scheduleFirst(ctx, sub, first, trialEnd ? "trialDays" : "startAt");
      return sub;
    }
    let unconfirmed = false;
    try {
      await this.chargeAndApply(ctx, first);
    } catch (err) {
      const e = toAppError(err);
      // Not sent (UPSTREAM_UNAVAILABLE) or maybe charged (OUTCOME_UNKNOWN): the subscription stays
      // INCOMPLETE, and reconciliation settles (or makes) the first charge under its merchant_uid.
      if (e.code !== "UPSTREAM_UNAVAILABLE" && e.code !== "OUTCOME_UNKNOWN") throw err;
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
            { statusReason: "first payment not confirmed yet: it will be settled with Iamport by reconciliation" },
          );
        }
        await ctx.em.refresh(sub);
        return sub;
      },
      { unknown: (cause) => startUnknown(sub, first, cause) },
    );
  }

  /**
   * Charges a PENDING subscription payment now (same merchant_uid, so never
   * twice) and records the outcome together with the renewal step, in one
   * transaction under the payment's row lock: a crash can never leave a paid
   * first charge without its next schedule, and a webhook for the same charge
   * arriving meanwhile acts once between them.
   */
  async chargeAndApply(ctx: Ctx, payment: Payment): Promise<void> {
    const sub = payment.subscription ? await ctx.em.findOne(Subscription, { id: payment.subscription.id }, { refresh: true }) : null;
    if (sub?.status === SubscriptionStatus.CANCELED) {
      // Canceled before the charge was ever made (its outcome was unknown): do not charge it now.
      await this.settlement.settleUnmade(ctx, payment.id, "the subscription was canceled before this charge was made");
      return;
    }
    let ip: ProviderPayment;
    // When Iamport was asked: verification asks again if the row changed after that.
    const askedAt = new Date();
    try {
      ip = await this.deps.provider.charge(againRequest(payment), { requestId: ctx.requestId });
    } catch (err) {
      // Never executed (no token, refused connection, 401): nothing was charged.
      if (!(err instanceof IamportRefusedError) && !outcomeUnknown(err)) throw upstreamError(err, "charge");
      // From here Iamport may have charged: any failure is OUTCOME_UNKNOWN (afterIamport).
      await afterIamport(ctx, payment.merchantUid, () => this.settleCharge(ctx, payment, err));
      return;
    }
    await afterIamport(ctx, payment.merchantUid, () => this.settlement.settleAnswer(ctx, ip, { askedAt }));
  }

  /** Settles a subscription charge whose `again` was refused or whose answer was lost. */
  private async settleCharge(ctx: Ctx, payment: Payment, err: unknown): Promise<void> {
    const askedAt = new Date();
    if (err instanceof IamportRefusedError) {
      // Refused outright (no billing key, order already paid...): nothing was charged now.
      // An order Iamport already has a payment for is settled from that payment instead.
      const existing = await this.findAtIamport(ctx, payment.merchantUid);
      if (existing) {
        await this.settlement.settleAnswer(ctx, existing, { askedAt });
        return;
      }
      await this.settlement.settleUnmade(ctx, payment.id, err.iamportMessage || "Iamport refused the charge");
      return;
    }
    ctx.log.warn({ merchantUid: payment.merchantUid, err: (err as Error).message }, "charge outcome unknown; settling by merchant_uid");
    const found = await this.findAtIamport(ctx, payment.merchantUid);
    // Not found yet: the payment stays PENDING and reconciliation settles it.
    if (!found) throw new OutcomeUnknownError(payment.merchantUid, { cause: err });
    await this.settlement.settleAnswer(ctx, found, { askedAt });
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
  async cancel(ctx: Ctx, input: CancelSubscriptionInput): Promise<Subscription> {
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
      if (exists.refundClaim) await this.finishRefund(ctx, id);
      await ctx.em.refresh(exists);
      return exists;
    }
    // Whether the paid period is over is a question for Iamport's clock, which runs the schedules.
    const now = await iamportNow(this.deps);
    // Iamport first, with no lock held: the open charges revoked, and what became of those it did not revoke.
    await this.withOpenChargesRevoked(ctx, exists, async (tx, sub, { ran, settleRan }) => {
      const em = tx.em;
      if (sub.status === SubscriptionStatus.CANCELED) return;
      const before = subscriptionState(sub);
      const wasAtPeriodEnd = sub.cancelAtPeriodEnd;
      sub.cancelReason = reason;
      sub.nextPaymentAt = null;
      sub.nextMerchantUid = null;
      if (ran.length > 0) {
        sub.cancelAtPeriodEnd = true;
        sub.statusReason = "cancels at the end of the period: a renewal charge Iamport may have made is being settled";
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
      const paidByRenewal = periodStillPaid && (await this.paidBySchedule(tx, sub));
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
        const quote = await this.refundQuote(tx, sub, now);
        const amount = !quote ? 0 : refund === CancellationRefund.FULL ? quote.balance : quote.proratedRefund;
        if (quote && amount > 0) {
          sub.refundClaim = { merchantUid: quote.payment.merchantUid, amount, balance: quote.balance, reason: reason ?? `subscription canceled (${refund.toLowerCase()} refund)` };
        }
      }
      await em.flush();
      await recordSubscriptionChange(em, sub, mark);
    });
    await ctx.em.refresh(exists);
    if (exists.refundClaim) {
      await this.finishRefund(ctx, id);
      await ctx.em.refresh(exists);
    }
    return exists;
  }

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
  async retryPayment(ctx: Ctx, idRaw: string): Promise<Subscription> {
    const id = checkUid("id", idRaw);
    const exists = await ctx.em.findOne(Subscription, { id });
    if (!exists) throw new NotFoundError(`Subscription ${idRaw}`);
    const retryable = (st: SubscriptionStatus) => st === SubscriptionStatus.PAST_DUE || st === SubscriptionStatus.UNPAID;
    if (exists.status === SubscriptionStatus.ACTIVE) return exists;
    if (!retryable(exists.status)) throw new BadUserInputError("id", `only a PAST_DUE or UNPAID subscription can be retried (this one is ${exists.status})`);
    await requireActiveCard(ctx, exists.customerUid);
    // The open dunning retries revoked at Iamport first, and those that ran looked up.
    const charge = await this.withOpenChargesRevoked(ctx, exists, async ({ em }, sub, { ran, settleRan }): Promise<Payment | null> => {
      if (ran.length > 0) {
        // A retry Iamport made meanwhile: its outcome is this attempt's; nothing more is charged.
        await settleRan();
        return null;
      }
      if (!retryable(sub.status)) return null;
      const period = sub.currentPeriod + 1;
      const attempts = await em.find(Payment, { subscription: id, period }, { orderBy: { attempt: "desc" } });
      // An attempt already in flight (a repeat of this request): it is the answer, not a second charge.
      if (attempts.some((p) => p.kind === PaymentKind.AGAIN && p.status === PaymentStatus.PENDING)) return null;
      const latest = attempts[0]?.attempt ?? 0;
      // An UNPAID subscription's attempt comes after every dunning retry, so a decline leaves it UNPAID.
      const floor = sub.status === SubscriptionStatus.UNPAID ? this.deps.config.retryScheduleSeconds.length + 1 : 1;
      const charge = newSubscriptionCharge(em, sub, period, Math.max(latest + 1, floor), PaymentKind.AGAIN, null);
      sub.nextPaymentAt = null;
      sub.nextMerchantUid = charge.merchantUid;
      sub.statusReason = `retrying the renewal now (${charge.merchantUid})`;
      await em.persistAndFlush(charge);
      return charge;
    });
    if (charge) await this.chargeAndApply(ctx, await ctx.em.findOneOrFail(Payment, { id: charge.id }));
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
  async pause(ctx: Ctx, idRaw: string, resumesAtRaw?: Date | null): Promise<Subscription> {
    const id = checkUid("id", idRaw);
    const exists = await ctx.em.findOne(Subscription, { id });
    if (!exists) throw new NotFoundError(`Subscription ${idRaw}`);
    if (exists.status === SubscriptionStatus.PAUSED) return exists;
    if (exists.status !== SubscriptionStatus.ACTIVE || exists.cancelAtPeriodEnd) {
      throw new BadUserInputError("id", `only an ACTIVE subscription that is not set to cancel can be paused (this one is ${exists.status}${exists.cancelAtPeriodEnd ? ", canceling at the period end" : ""})`);
    }
    const now = await iamportNow(this.deps);
    const resumesAt = resumesAtRaw ? checkFuture("resumesAt", resumesAtRaw, now) : null;
    await this.withOpenChargesRevoked(ctx, exists, async ({ em }, sub, { ran, settleRan }) => {
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
  async resume(ctx: Ctx, idRaw: string): Promise<Subscription> {
    const id = checkUid("id", idRaw);
    const exists = await ctx.em.findOne(Subscription, { id });
    if (!exists) throw new NotFoundError(`Subscription ${idRaw}`);
    if (exists.status === SubscriptionStatus.ACTIVE && !exists.cancelAtPeriodEnd) return exists;
    if (exists.status !== SubscriptionStatus.PAUSED && exists.status !== SubscriptionStatus.ACTIVE) {
      throw new BadUserInputError("id", `only a PAUSED subscription, or one set to cancel at the period end, can be resumed (this one is ${exists.status})`);
    }
    await requireActiveCard(ctx, exists.customerUid);
    const now = await iamportNow(this.deps);
    const claimed = await ctx.em.transactional(async (em): Promise<Payment | null> => {
      const {
        subscriptions: [sub],
      } = await lockBillingRows(em, null, [id]);
      const before = subscriptionState(sub);
      const period = sub.currentPeriod + 1;
      const attempts = await em.find(Payment, { subscription: id, period }, { orderBy: { attempt: "desc" } });
      const attempt = (attempts[0]?.attempt ?? 0) + 1;
      if (sub.status === SubscriptionStatus.PAUSED) {
        if (attempts.some((p) => p.kind === PaymentKind.AGAIN && p.status === PaymentStatus.PENDING)) return null;
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
      await this.chargeAndApply(ctx, await ctx.em.findOneOrFail(Payment, { id: claimed.id }));
    } else if (claimed) {
      try {
        await this.schedules.register(ctx, exists.customerUid, [await ctx.em.findOneOrFail(Payment, { id: claimed.id })]);
      } catch (err) {
        const code = toAppError(err).code;
        // Not registered yet: the row stays PENDING and reconciliation registers it.
        if (code !== "UPSTREAM_UNAVAILABLE" && code !== "OUTCOME_UNKNOWN") throw err;
        ctx.log.warn({ subscriptionId: id, err: (err as Error).message }, "renewal after an undone cancellation not registered yet; reconciliation will");
      }
    }
    await ctx.em.refresh(exists);
    return exists;
  }

  /** Reconciliation: resumes PAUSED subscriptions whose resumesAt has come (Iamport's clock). Returns how many. */
  async resumeDue(ctx: Ctx, now: Date, limit: number): Promise<number> {
    const due = await ctx.em.find(
      Subscription,
      { status: SubscriptionStatus.PAUSED, resumesAt: { $lte: now } },
      { limit, orderBy: { id: "asc" }, fields: ["id"] },
    );
    for (const { id } of due) await this.resume(ctx, id);
    return due.length;
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
  async changePlan(ctx: Ctx, input: ChangePlanInput, by: "customer" | "merchant"): Promise<Subscription> {
    const id = checkUid("id", input.id);
    const proration = input.proration ?? Proration.NEXT_PERIOD;
    if (!Object.values(Proration).includes(proration)) throw new BadUserInputError("proration", "is not CHARGE_NOW or NEXT_PERIOD");
    const exists = await ctx.em.findOne(Subscription, { id });
    if (!exists) throw new NotFoundError(`Subscription ${input.id}`);
    const plan = await this.plans.forNewSubscription(ctx, input.planCode);
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
    const now = await iamportNow(this.deps);
    if (merchantUpgrade) return this.askForPlanConsent(ctx, exists, plan, now);
    const tz = this.deps.config.billingTimeZone;
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
        const paid = await this.payments.executeAgain(ctx, await ctx.em.findOneOrFail(Payment, { id: charge.id }));
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
    const next = await this.withOpenChargesRevoked(ctx, exists, async (tx, sub, { open, ran, settleRan }): Promise<Payment | null> => {
      const em = tx.em;
      if (ran.length > 0) await settleRan();
      const revokedAt = open.find((p) => p.status === PaymentStatus.REVOKED && p.period === sub.currentPeriod + 1)?.scheduledAt;
      // A price change opened while Iamport was asked: nothing of the plan is taken, the renewal is registered
      // again with the terms it had, and the change is refused after.
      race.change = sub.planCode === plan.code ? null : await openChange(em, id);
      const switching = !race.change;
      if (switching && proration === Proration.CHARGE_NOW && plan.amount < sub.amount && sub.planCode !== plan.code) {
        const quote = await this.refundQuote(tx, sub, now);
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
      const attempts = await em.find(Payment, { subscription: id, period }, { orderBy: { attempt: "desc" } });
      const next = newSubscriptionCharge(em, sub, period, (attempts[0]?.attempt ?? 0) + 1, PaymentKind.SCHEDULE, notBefore(revokedAt ?? sub.currentPeriodEnd, now));
      sub.nextPaymentAt = next.scheduledAt;
      sub.nextMerchantUid = next.merchantUid;
      await em.persistAndFlush(next);
      return next;
    });
    if (next) {
      try {
        await this.schedules.register(ctx, exists.customerUid, [await ctx.em.findOneOrFail(Payment, { id: next.id })]);
      } catch (err) {
        const code = toAppError(err).code;
        if (code !== "UPSTREAM_UNAVAILABLE" && code !== "OUTCOME_UNKNOWN") throw err;
        ctx.log.warn({ subscriptionId: id, err: (err as Error).message }, "renewal at the new plan's amount not registered yet; reconciliation will");
      }
    }
    if (race.change) throw inFlightConflict(id, race.change);
    await ctx.em.refresh(exists);
    if (exists.refundClaim) {
      await this.finishRefund(ctx, id);
      await ctx.em.refresh(exists);
    }
    return exists;
  }

  /**
   * A merchant's upgrade: a price change to the plan's amount that carries
   * the plan, opened under the subscription's lock like requestPriceChange's,
   * waiting for the customer's consent (PriceChangeService applies it).
   * A repeat answers the subscription with the change it opened.
   */
  private async askForPlanConsent(ctx: Ctx, exists: Subscription, plan: Plan, now: Date): Promise<Subscription> {
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
        await openPriceChange(em, sub, { newAmount: plan.amount, planCode: plan.code, effectiveAt: null }, now, this.deps.config.billingTimeZone);
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

  /**
   * What cancelling now would give back: the days of the current paid period
   * and those used (in BILLING_TIME_ZONE, by Iamport's clock, the day of the
   * cancellation counted as used), the pro-rata refund in whole won rounded
   * down (never more than is left to refund of the payment), and whether the
   * payment is within WITHDRAWAL_DAYS. Zeros when no period is paid.
   */
  async cancellationPreview(ctx: Ctx, id: string): Promise<CancellationPreview> {
    const sub = await this.get(ctx, id);
    if (!sub) throw new NotFoundError(`Subscription ${id}`);
    const quote = await this.refundQuote(ctx, sub, await iamportNow(this.deps));
    return {
      subscriptionId: sub.id,
      periodDays: quote?.periodDays ?? 0,
      usedDays: quote?.usedDays ?? 0,
      proratedRefund: quote?.proratedRefund ?? 0,
      withinWithdrawalWindow: quote?.withinWithdrawalWindow ?? false,
    };
  }

  /** The current period's payment and what a cancellation at `now` could refund of it; null when no period is paid. */
  private async refundQuote(ctx: Ctx, sub: Subscription, now: Date): Promise<RefundQuote | null> {
    if (sub.currentPeriod < 1 || !sub.currentPeriodStart || !sub.currentPeriodEnd) return null;
    const payment = await ctx.em.findOne(
      Payment,
      { subscription: sub.id, period: sub.currentPeriod, status: { $in: [PaymentStatus.PAID, PaymentStatus.CANCELLED] }, impUid: { $ne: null } },
      { orderBy: { attempt: "desc" }, refresh: true },
    );
    if (!payment) return null;
    const paid = payment.paidAmount ?? payment.amount;
    const balance = Math.max(0, paid - payment.cancelledAmount);
    const { billingTimeZone: tz, withdrawalDays } = this.deps.config;
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
  async finishRefund(ctx: Ctx, id: string): Promise<boolean> {
    const sub = await ctx.em.findOne(Subscription, { id }, { refresh: true });
    const claim = sub?.refundClaim;
    if (!claim) return true;
    const payment = await ctx.em.findOne(Payment, { merchantUid: claim.merchantUid }, { refresh: true });
    let refused: string | null = null;
    if (payment) {
      try {
        await this.payments.sendRefund(ctx, payment, { amount: claim.amount, balance: claim.balance, reason: claim.reason, claimed: true });
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

  /** Reconciliation: finishes refunds that cancellations claimed but could not confirm. Returns how many were finished. */
  async finishClaimedRefunds(ctx: Ctx, limit: number): Promise<number> {
    const claimed = await ctx.em.find(Subscription, { refundClaim: { $ne: null } }, { limit, orderBy: { id: "asc" }, fields: ["id"] });
    let finished = 0;
    for (const { id } of claimed) if (await this.finishRefund(ctx, id)) finished += 1;
    return finished;
  }

  /** The subscription's charges that may still run at Iamport (as read now, with no lock). */
  private openCharges(ctx: Ctx, subscriptionId: string): Promise<Payment[]> {
    return ctx.em.find(
      Payment,
      { subscription: subscriptionId, status: { $in: OPEN_CHARGE_STATUSES }, kind: PaymentKind.SCHEDULE },
      { orderBy: { id: "asc" }, refresh: true },
    );
  }

  /**
   * Asks Iamport to revoke `rows`, with no lock held, and looks up those it
   * did not revoke: never registered (a claim whose registration has not
   * reached Iamport: its registrar unschedules it when it finds the row
   * revoked), registered after the revocation was sent (revoked once more),
   * or already run (their payment is fetched, for settleRan).
   */
  async revokeAtIamport(ctx: Ctx, customerUid: string, rows: Payment[]): Promise<Map<string, AtIamport>> {
    const out = new Map<string, AtIamport>();
    if (rows.length === 0) return out;
    const opts = { requestId: ctx.requestId };
    const unschedule = async (uids: string[]): Promise<Set<string>> => {
      try {
        const result = await this.deps.provider.revoke(customerUid, uids, opts);
        return new Set(result.filter((s) => s.schedule_status === "revoked").map((s) => s.merchant_uid));
      } catch (err) {
        // Refused: nothing left to revoke (already ran, or never registered); each one is looked up.
        if (!(err instanceof IamportRefusedError || err instanceof IamportNotFoundError)) throw upstreamError(err, "unschedule");
        return new Set();
      }
    };
    const lookUp = async (uid: string): Promise<ProviderSchedule | null> => {
      try {
        return await this.deps.provider.getSchedule(uid, opts);
      } catch (err) {
        if (err instanceof IamportNotFoundError) return null;
        throw upstreamError(err, `schedule ${uid}`);
      }
    };
    const revoked = await unschedule(rows.map((p) => p.merchantUid));
    const late: string[] = [];
    for (const p of rows) {
      if (revoked.has(p.merchantUid)) {
        out.set(p.merchantUid, { kind: "revoked" });
        continue;
      }
      const s = await lookUp(p.merchantUid);
      if (!s) out.set(p.merchantUid, { kind: "never-registered" });
      else if (s.schedule_status === "revoked") out.set(p.merchantUid, { kind: "revoked" });
      else if (s.schedule_status === "scheduled") late.push(p.merchantUid);
      else out.set(p.merchantUid, { kind: "ran", impUid: s.imp_uid });
    }
    if (late.length > 0) {
      // Registered after the revocation was sent (a registration that was still in flight): revoke it now.
      const again = await unschedule(late);
      for (const uid of late) {
        const s = again.has(uid) ? null : await lookUp(uid);
        if (again.has(uid) || s?.schedule_status === "revoked") out.set(uid, { kind: "revoked" });
        else out.set(uid, { kind: "ran", impUid: s?.imp_uid ?? null });
      }
    }
    for (const [uid, o] of out) {
      if (o.kind !== "ran") continue;
      ctx.log.warn({ merchantUid: uid }, "schedule ran before it could be revoked");
      const askedAt = new Date();
      try {
        o.answer = (await this.findAtIamport(ctx, uid)) ?? undefined;
        o.askedAt = askedAt;
      } catch (err) {
        ctx.log.warn({ merchantUid: uid, err: (err as Error).message }, "charge met by a cancellation could not be looked up; left to its webhook");
      }
    }
    return out;
  }

  /**
   * Records what Iamport said of each open charge (locked by the caller):
   * revoked or never registered: REVOKED. Returns the charges that ran, to
   * be settled, and those registered after Iamport was asked (a renewal's
   * claim that reached Iamport meanwhile), to be revoked after the commit;
   * a claim still PENDING is REVOKED now, and its registrar unschedules it.
   */
  /**
   * The one way a mutation takes a subscription's open renewal charges out
   * of Iamport's hands before changing it: they are revoked at Iamport first,
   * with no lock held; then, in one transaction under the billing locks (the
   * subscription and its open SCHEDULE charges), the revocations are
   * recorded and `step` runs with the locked charges (`open`) and those Iamport ran meanwhile (`ran`,
   * settled by `settleRan` when the step chooses). Charges registered while
   * Iamport was being asked (a renewal's claim) are revoked after the commit,
   * again with no lock held.
   */
  private async withOpenChargesRevoked<T>(
    ctx: Ctx,
    sub: Subscription,
    step: (tx: Ctx, locked: Subscription, charges: { open: Payment[]; ran: Payment[]; settleRan: () => Promise<boolean> }) => Promise<T>,
  ): Promise<T> {
    const asked = await this.revokeAtIamport(ctx, sub.customerUid, await this.openCharges(ctx, sub.id));
    const done = await ctx.em.transactional(async (em): Promise<{ result: T; late: Payment[] }> => {
      const tx = withEm(ctx, em);
      const {
        payments: open,
        subscriptions: [locked],
      } = await lockBillingRows(em, { subscription: sub.id, status: { $in: OPEN_CHARGE_STATUSES }, kind: PaymentKind.SCHEDULE }, [sub.id]);
      const { ran, late } = this.recordRevocations(open, asked);
      const result = await step(tx, locked, { open, ran, settleRan: () => this.settleRan(tx, ran, asked) });
      return { result, late };
    });
    if (done.late.length > 0) await this.revokeStragglers(ctx, sub.id, done.late);
    return done.result;
  }

  private recordRevocations(open: Payment[], asked: Map<string, AtIamport>): { ran: Payment[]; late: Payment[] } {
    const ran: Payment[] = [];
    const late: Payment[] = [];
    const now = new Date();
    for (const p of open) {
      const o = asked.get(p.merchantUid);
      if (o?.kind === "ran") {
        if (o.impUid && !p.impUid) p.impUid = o.impUid;
        ran.push(p);
      } else if (o || p.status === PaymentStatus.PENDING) {
        p.status = PaymentStatus.REVOKED;
        p.checkedAt = now;
      } else {
        late.push(p);
      }
    }
    return { ran, late };
  }

  /** Revokes charges registered while a cancellation was asking Iamport, and records them REVOKED. */
  private async revokeStragglers(ctx: Ctx, subscriptionId: string, rows: Payment[]): Promise<void> {
    const sub = await ctx.em.findOneOrFail(Subscription, { id: subscriptionId }, { refresh: true });
    const asked = await this.revokeAtIamport(ctx, sub.customerUid, rows);
    await ctx.em.transactional(async (em) => {
      const { payments: open } = await lockBillingRows(em, { id: { $in: rows.map((p) => p.id) }, status: { $in: OPEN_CHARGE_STATUSES } }, [subscriptionId]);
      const { ran } = this.recordRevocations(
        open.filter((p) => asked.has(p.merchantUid)),
        asked,
      );
      if (ran.length > 0) await this.settleRan(withEm(ctx, em), ran, asked);
    });
  }

  /**
   * Settles charges Iamport ran (or may be running) before they could be
   * revoked, from their payments fetched by revokeAtIamport, through the
   * executor, under the locks the caller holds. Returns true when one of them
   * could not be settled (Iamport has no payment for it yet, or could not be asked).
   */
  private async settleRan(ctx: Ctx, ran: Payment[], asked: Map<string, AtIamport>): Promise<boolean> {
    let unsettled = false;
    for (const p of ran) {
      const o = asked.get(p.merchantUid);
      // Under the cancellation's locks: the answer fetched just before them is taken as it is (no Iamport call
      // under a lock); the status table and supersedes() still keep it from undoing newer facts.
      if (o?.kind === "ran" && o.answer) await this.settlement.settleAnswer(ctx, o.answer, { askedAt: o.askedAt, askAgain: false });
      if (p.status === PaymentStatus.SCHEDULED || p.status === PaymentStatus.PENDING) unsettled = true;
    }
    return unsettled;
  }

  /** Whether the subscription's current period was paid by a charge of Iamport's schedule (a renewal, or a first charge given startAt). */
  private async paidBySchedule(ctx: Ctx, sub: Subscription): Promise<boolean> {
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
  async releaseCard(ctx: Ctx, customerUid: string, cancelSubscriptions: boolean): Promise<void> {
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
    for (const id of ids) await this.cancel(ctx, { id, reason: "the card was deleted" });
  }

  /**
   * Reconciliation's safety net: schedules still open (SCHEDULED or PENDING) at
   * subscriptions that can no longer be charged (CANCELED, UNPAID, PAUSED) are revoked
   * at Iamport as a cancellation revokes them (Iamport asked with no lock held,
   * its answers recorded under the locks). Returns how many
   * subscriptions were cleaned.
   */
  async revokeOrphans(ctx: Ctx, limit: number): Promise<number> {
    const rows = await ctx.em.find(
      Payment,
      {
        kind: PaymentKind.SCHEDULE,
        status: { $in: [PaymentStatus.SCHEDULED, PaymentStatus.PENDING] },
        subscription: { status: { $in: [SubscriptionStatus.CANCELED, SubscriptionStatus.UNPAID, SubscriptionStatus.PAUSED] } },
      },
      { limit, orderBy: { id: "asc" } },
    );
    const subs = [...new Set(rows.map((r) => r.subscription!.id))];
    const ended = (st: SubscriptionStatus) => st === SubscriptionStatus.CANCELED || st === SubscriptionStatus.UNPAID || st === SubscriptionStatus.PAUSED;
    for (const subId of subs) {
      const sub = await ctx.em.findOneOrFail(Subscription, { id: subId }, { refresh: true });
      if (!ended(sub.status)) continue;
      // Iamport with no lock held; what it said recorded under the locks. Charges that ran are left to their webhooks.
      const asked = await this.revokeAtIamport(ctx, sub.customerUid, await this.openCharges(ctx, subId));
      await ctx.em.fork().transactional(async (em) => {
        const {
          payments: open,
          subscriptions: [locked],
        } = await lockBillingRows(em, { subscription: subId, status: { $in: OPEN_CHARGE_STATUSES }, kind: PaymentKind.SCHEDULE }, [subId]);
        if (ended(locked.status)) this.recordRevocations(open.filter((p) => asked.has(p.merchantUid)), asked);
      });
    }
    return subs.length;
  }

  /**
   * Marks subscriptions set to cancel at period end as CANCELED once their
   * period is over, each under its open payments' and its own row locks (the
   * renewal step's order), so a renewal that grants the next period at the
   * same moment is seen. One with a charge still open (a renewal Iamport ran
   * as the cancellation arrived, its outcome not known yet) waits: its
   * webhook or reconciliation settles it first, and a paid one moves the end.
   */
  async expireCanceledAtPeriodEnd(ctx: Ctx, now: Date): Promise<number> {
    const due = await ctx.em.find(Subscription, {
      cancelAtPeriodEnd: true,
      status: { $ne: SubscriptionStatus.CANCELED },
      currentPeriodEnd: { $lte: now },
    });
    let ended = 0;
    for (const { id } of due) {
      const done = await ctx.em.fork().transactional(async (em) => {
        const {
          payments: open,
          subscriptions: [sub],
        } = await lockBillingRows(em, { subscription: id, status: { $in: OPEN_CHARGE_STATUSES } }, [id]);
        const over = sub.cancelAtPeriodEnd && !!sub.currentPeriodEnd && sub.currentPeriodEnd.getTime() <= now.getTime();
        if (sub.status === SubscriptionStatus.CANCELED || !over || open.length > 0) return false;
        const before = subscriptionState(sub);
        sub.status = SubscriptionStatus.CANCELED;
        sub.canceledAt = now;
        sub.statusReason = sub.cancelReason ? `canceled at the end of the period: ${sub.cancelReason}` : "canceled at the end of the period";
        await em.flush();
        await recordSubscriptionChange(em, sub, before);
        return true;
      });
      if (done) ended += 1;
    }
    return ended;
  }

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
  async consentToTrialConversion(ctx: Ctx, id: string, by: "customer" | "merchant"): Promise<Subscription> {
    const subId = checkUid("subscriptionId", id);
    const now = await iamportNow(this.deps);
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
        await this.settlement.registerUnregistered(ctx, claimed);
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
  async endTrials(ctx: Ctx, now: Date, limit: number): Promise<number> {
    const due = await ctx.em.find(
      Subscription,
      { status: SubscriptionStatus.TRIALING, trialEnd: { $lte: now }, nextMerchantUid: null },
      { orderBy: { trialEnd: "asc" }, limit },
    );
    let ended = 0;
    for (const { id } of due) {
      const done = await ctx.em.fork().transactional(async (em) => {
        const {
          payments: open,
          subscriptions: [sub],
        } = await lockBillingRows(em, { subscription: id, status: { $in: OPEN_CHARGE_STATUSES } }, [id]);
        const over = !!sub.trialEnd && sub.trialEnd.getTime() <= now.getTime();
        if (sub.status !== SubscriptionStatus.TRIALING || !over || sub.nextMerchantUid || open.length > 0) return false;
        const before = subscriptionState(sub);
        sub.status = SubscriptionStatus.CANCELED;
        sub.canceledAt = now;
        sub.statusReason = `the free trial ended at ${sub.trialEnd!.toISOString()} without the customer's consent to paid renewals: nothing was charged`;
        await em.flush();
        await recordSubscriptionChange(em, sub, before);
        return true;
      });
      if (done) ended += 1;
    }
    return ended;
  }

  async get(ctx: Ctx, id: string): Promise<Subscription | null> {
    return ctx.em.findOne(Subscription, { id: checkUid("id", id) });
  }

  /** Newest first, keyset-paginated by creation time and id. */
  async list(
    ctx: Ctx,
    filter: { customerUid?: string | null; status?: SubscriptionStatus | null },
    first: number,
    after?: string | null,
  ): Promise<Page<Subscription>> {
    const limit = checkFirst(first);
    const where: FilterQuery<Subscription> = {};
    if (filter.customerUid) where.customerUid = checkUid("customerUid", filter.customerUid);
    if (filter.status) where.status = filter.status;
    if (after) where.id = { $lt: decodeCursor("after", after) };
    const rows = await ctx.em.find(Subscription, where, { orderBy: { id: "desc" }, limit: limit + 1 });
    const hasNextPage = rows.length > limit;
    const nodes = hasNextPage ? rows.slice(0, limit) : rows;
    return { nodes, pageInfo: { hasNextPage, endCursor: nodes.length ? encodeCursor(nodes[nodes.length - 1].id) : null } };
  }

  // ---- internals -------------------------------------------------------------

  /**
   * What a new subscription charges: from its plan when planCode is given
   * (explicit fields may then be omitted, and when given must match the
   * plan's), else from the explicit fields, which are then required.
   */
  private async terms(ctx: Ctx, input: StartSubscriptionInput): Promise<Terms> {
    if (input.planCode !== null && input.planCode !== undefined) {
      const plan = await this.plans.forNewSubscription(ctx, input.planCode);
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
      amount: checkAmount("amount", required("amount", input.amount), this.deps.config.maxAmount),
      interval: checkInterval("interval", required("interval", input.interval)),
      intervalCount: checkIntervalCount("intervalCount", input.intervalCount),
      trialDays: 0,
      taxFreeAmount: 0,
      vatAmount: null,
    };
  }

  /** CONFLICT naming the customer's live subscription of this name, if there is one. */
  private async refuseLiveDuplicate(ctx: Ctx, customerUid: string, name: string): Promise<void> {
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
  private async scheduleFirst(ctx: Ctx, sub: Subscription, first: Payment, field: string): Promise<void> {
    try {
      await this.schedules.register(ctx, sub.customerUid, [first], { keepRowsOnRefusal: true });
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
      const code = toAppError(err).code;
      if (code !== "UPSTREAM_UNAVAILABLE" && code !== "OUTCOME_UNKNOWN") throw err;
      sub.statusReason = "first payment not registered with Iamport yet: reconciliation will register it";
      await afterIamport(ctx, first.merchantUid, () => ctx.em.flush(), { unknown: (cause) => startUnknown(sub, first, cause) });
    }
  }

  /** The payment Iamport has for an order, or null when it has none. */
  private async findAtIamport(ctx: Ctx, merchantUid: string): Promise<ProviderPayment | null> {
    try {
      return await this.deps.provider.findByOrder(merchantUid, { requestId: ctx.requestId });
    } catch (err) {
      if (err instanceof IamportNotFoundError) return null;
      throw upstreamError(err, `payment ${merchantUid}`);
    }
  }

}

/** How long before a trial's end consent to its conversion counts (전자상거래법 §13⑥, 시행령 §20-2: 30 days). */
export const CONSENT_WINDOW_DAYS = 30;

/** The first moment consent to converting a trial that ends at `trialEnd` counts. */
export function consentWindowOpens(trialEnd: Date): Date {
  return new Date(trialEnd.getTime() - CONSENT_WINDOW_DAYS * 86_400_000);
}

/** The end of a trial of `days` days started at `now`: whole days in the billing time zone, whole seconds as Iamport keeps them. */
function trialEndFrom(now: Date, days: number, timeZone: string): Date {
  return wholeSeconds(periodOf(wholeSeconds(now), BillingInterval.DAY, days, 1, timeZone).end);
}

/** statusReason of a trial. */
function trialReason(trialEnd: Date, consent: "awaiting" | "consented" | "not-required"): string {
  const end = trialEnd.toISOString();
  if (consent === "awaiting") {
    return `free trial until ${end}: it turns paid only with the customer's consent, given within the ${CONSENT_WINDOW_DAYS} days before it ends (consentToTrialConversion); without it the subscription ends then, with nothing charged`;
  }
  if (consent === "consented") return `free trial until ${end}; the customer consented to paid renewals from then, and the first charge is scheduled for that moment`;
  return `free trial until ${end}; the first charge is scheduled for that moment`;
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
