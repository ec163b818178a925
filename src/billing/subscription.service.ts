import { LockMode, UniqueConstraintViolationException, type FilterQuery } from "@mikro-orm/core";
import { Payment, Subscription } from "../db/entities";
import { BillingInterval, LIVE_SUBSCRIPTION_STATUSES, PaymentKind, PaymentStatus, SubscriptionStatus } from "../db/entities/enums";
import { BadUserInputError, ConflictError, NotFoundError, OutcomeUnknownError, toAppError } from "../errors";
import { IamportNotFoundError, IamportRefusedError } from "../iamport/iamport.errors";
import type { IamportPayment } from "../iamport/iamport.types";
import { periodOf } from "./billing-dates";
import type { CardService } from "./card.service";
import { afterIamport, BillingDeps, Ctx, derivedId, withEm, outcomeUnknown, randomId, upstreamError } from "./context";
import { decodeCursor, encodeCursor, Page } from "./pagination";
import { againRequest, checkFirst, PaymentService } from "./payment.service";
import { checkAmount, checkFuture, checkText, checkUid, optionalText } from "./validation";
import type { Verification } from "./verification";

export interface StartSubscriptionInput {
  customerUid: string;
  name: string;
  amount: number;
  interval: BillingInterval;
  intervalCount?: number | null;
  startAt?: Date | null;
  /** Start it even while the customer has a live subscription of the same name. */
  allowDuplicate?: boolean | null;
}

export interface CancelSubscriptionInput {
  id: string;
  atPeriodEnd?: boolean | null;
  reason?: string | null;
}

/**
 * Declines that a retry cannot fix (lost, stolen, suspended or expired card):
 * dunning stops at once and the subscription becomes UNPAID. Limit and
 * balance declines ("한도초과", "잔액부족") are retried on RETRY_SCHEDULE.
 */
export const HARD_DECLINE = /(분실|도난|정지|해지|유효기간|lost|stolen|suspend|expired|closed account|invalid card)/i;

/** Deterministic merchant_uid of a subscription charge: the database key that makes a renewal happen once. */
export function renewalMerchantUid(subscriptionId: string, period: number, attempt: number): string {
  return `sub_${subscriptionId}_p${period}_a${attempt}`;
}

/** Subscriptions: start, renew on the schedule webhook, dun, cancel. */
export class SubscriptionService {
  constructor(
    private readonly deps: BillingDeps,
    private readonly cards: CardService,
    private readonly payments: PaymentService,
  ) {}

  /**
   * Starts a subscription. Without startAt the first period is charged now and,
   * when paid, the next one is scheduled; with startAt the first charge is scheduled.
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
    const name = checkText("name", input.name, 200);
    const amount = checkAmount("amount", input.amount, this.deps.config.maxAmount);
    if (!Object.values(BillingInterval).includes(input.interval)) throw new BadUserInputError("interval", "is not a billing interval");
    const intervalCount = input.intervalCount ?? 1;
    if (!Number.isInteger(intervalCount) || intervalCount < 1 || intervalCount > 366) {
      throw new BadUserInputError("intervalCount", "must be a whole number from 1 to 366");
    }
    const startAt = input.startAt ? checkFuture("startAt", input.startAt) : null;
    const allowDuplicate = input.allowDuplicate === true;
    const requestRef = derivedId(ctx) ?? null;
    await this.cards.requireActive(ctx, customerUid);
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
      interval: input.interval,
      intervalCount,
      // Whole seconds: Iamport schedules are in UNIX seconds, and period boundaries must match them.
      // Without startAt this is provisional: the anchor becomes the moment Iamport takes the first payment.
      anchorAt: wholeSeconds(startAt ?? new Date()),
      status: startAt ? SubscriptionStatus.ACTIVE : SubscriptionStatus.INCOMPLETE,
      statusReason: startAt ? "first payment scheduled" : "first payment in progress",
      allowDuplicate,
      requestRef,
    });
    const first = this.newPayment(ctx, sub, 1, 1, startAt ? PaymentKind.SCHEDULE : PaymentKind.AGAIN, startAt ? wholeSeconds(startAt) : null);
    sub.nextPaymentAt = first.scheduledAt ?? null;
    sub.nextMerchantUid = first.merchantUid;
    try {
      await ctx.em.persistAndFlush([sub, first]);
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

    if (startAt) {
      await this.scheduleFirst(ctx, sub, first);
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
    const after = this.afterVerification;
    const sub = payment.subscription ? await ctx.em.findOne(Subscription, { id: payment.subscription.id }, { refresh: true }) : null;
    if (sub?.status === SubscriptionStatus.CANCELED) {
      // Canceled before the charge was ever made (its outcome was unknown): do not charge it now.
      await this.failUnmade(ctx, payment, "the subscription was canceled before this charge was made");
      return;
    }
    let ip: IamportPayment;
    // When Iamport was asked: verification asks again if the row changed after that.
    const askedAt = new Date();
    try {
      ip = await this.deps.iamport.again(againRequest(payment), { requestId: ctx.requestId });
    } catch (err) {
      // Never executed (no token, refused connection, 401): nothing was charged.
      if (!(err instanceof IamportRefusedError) && !outcomeUnknown(err)) throw upstreamError(err, "charge");
      // From here Iamport may have charged: any failure is OUTCOME_UNKNOWN (afterIamport).
      await afterIamport(ctx, payment.merchantUid, () => this.settleCharge(ctx, payment, err));
      return;
    }
    await afterIamport(ctx, payment.merchantUid, () => this.payments.verifyFetched(ctx, ip, null, after, askedAt));
  }

  /** Settles a subscription charge whose `again` was refused or whose answer was lost. */
  private async settleCharge(ctx: Ctx, payment: Payment, err: unknown): Promise<void> {
    const askedAt = new Date();
    if (err instanceof IamportRefusedError) {
      // Refused outright (no billing key, order already paid...): nothing was charged now.
      // An order Iamport already has a payment for is settled from that payment instead.
      const existing = await this.findAtIamport(ctx, payment.merchantUid);
      if (existing) {
        await this.payments.verifyFetched(ctx, existing, null, this.afterVerification, askedAt);
        return;
      }
      await this.failUnmade(ctx, payment, err.iamportMessage || "Iamport refused the charge");
      return;
    }
    ctx.log.warn({ merchantUid: payment.merchantUid, err: (err as Error).message }, "charge outcome unknown; settling by merchant_uid");
    const found = await this.findAtIamport(ctx, payment.merchantUid);
    // Not found yet: the payment stays PENDING and reconciliation settles it.
    if (!found) throw new OutcomeUnknownError(payment.merchantUid, { cause: err });
    await this.payments.verifyFetched(ctx, found, null, this.afterVerification, askedAt);
  }

  /** The renewal step as the verification hook (bound, so it can be handed around). */
  readonly afterVerification = (ctx: Ctx, payment: Payment, previous: PaymentStatus, v: Verification): Promise<void> =>
    this.onPaymentVerified(ctx, payment, previous, v);

  /**
   * The renewal step. Runs inside the verification transaction with the
   * payment row locked, so concurrent deliveries of one webhook act once; the
   * subscription row is locked too, so two payments of one subscription (or a
   * cancellation) never interleave. The next payment's row has a unique
   * (subscription, period, attempt) key and a deterministic merchant_uid.
   */
  async onPaymentVerified(ctx: Ctx, payment: Payment, previous: PaymentStatus, v: Verification): Promise<void> {
    if (!payment.subscription || payment.status === previous) return;
    const em = ctx.em;
    const sub = await em.findOne(Subscription, { id: payment.subscription.id }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
    if (!sub) return;
    const period = payment.period ?? 1;
    const attempt = payment.attempt ?? 1;
    const tz = this.deps.config.billingTimeZone;

    if (sub.status === SubscriptionStatus.CANCELED) {
      ctx.log.warn({ subscriptionId: sub.id, merchantUid: payment.merchantUid, status: payment.status }, "payment of a canceled subscription");
      return;
    }
    if (payment.status !== PaymentStatus.PAID && payment.status !== PaymentStatus.FAILED) {
      if (payment.status === PaymentStatus.FORGERY_SUSPECTED) {
        ctx.log.error({ subscriptionId: sub.id, merchantUid: payment.merchantUid }, "subscription payment forgery suspected");
      }
      return;
    }

    // An outcome that arrives after the subscription moved past it (a late webhook
    // of an earlier attempt) must not rewind it: only the latest payment decides.
    const nextKey = payment.status === PaymentStatus.PAID ? renewalMerchantUid(sub.id, period + 1, 1) : renewalMerchantUid(sub.id, period, attempt + 1);
    const later = await em.find(Payment, { subscription: sub.id, $or: [{ period: { $gt: period } }, { period, attempt: { $gt: attempt } }] });
    if (later.some((p) => p.merchantUid !== nextKey)) {
      ctx.log.info({ subscriptionId: sub.id, merchantUid: payment.merchantUid, status: payment.status }, "outcome of a superseded attempt; nothing to do");
      return;
    }

    if (payment.status === PaymentStatus.PAID) {
      if (sub.currentPeriod === 0 && period === 1 && payment.kind === PaymentKind.AGAIN && payment.paidAt) {
        // Charged at once: the first period starts when Iamport took the money, by Iamport's clock.
        sub.anchorAt = wholeSeconds(payment.paidAt);
      }
      if (period > sub.currentPeriod) {
        const p = periodOf(sub.anchorAt, sub.interval, sub.intervalCount, period, tz);
        sub.currentPeriod = period;
        sub.currentPeriodStart = p.start;
        sub.currentPeriodEnd = p.end;
      }
      sub.status = SubscriptionStatus.ACTIVE;
      // A cancellation that met this charge takes effect at the end of the period it paid for.
      sub.statusReason = sub.cancelAtPeriodEnd ? "cancels at the end of the current period, which its renewal charge paid for" : null;
      sub.nextPaymentAt = null;
      sub.nextMerchantUid = null;
      if (!sub.cancelAtPeriodEnd) {
        // Retries never move the anchor: the next period starts on its boundary whatever day this one was paid.
        const next = periodOf(sub.anchorAt, sub.interval, sub.intervalCount, period + 1, tz);
        await this.scheduleCharge(ctx, sub, period + 1, 1, this.notBefore(next.start, payment.paidAt));
      }
      await em.flush();
      ctx.log.info({ subscriptionId: sub.id, period, attempt, merchantUid: payment.merchantUid }, "renewal paid");
      return;
    }

    if (sub.status === SubscriptionStatus.INCOMPLETE && period === 1 && payment.kind === PaymentKind.AGAIN) {
      // A declined first charge leaves no active subscription.
      sub.status = SubscriptionStatus.CANCELED;
      sub.canceledAt = new Date();
      sub.statusReason = `first payment declined: ${payment.failReason ?? "unknown reason"}`;
      sub.nextPaymentAt = null;
      sub.nextMerchantUid = null;
      await em.flush();
      ctx.log.info({ subscriptionId: sub.id, merchantUid: payment.merchantUid }, "first payment declined; subscription canceled");
      return;
    }
    const reason = payment.failReason ?? "";
    if (sub.cancelAtPeriodEnd) {
      // Canceled while this charge's outcome was unknown: no period was paid after the one that
      // ended, so the subscription ends now, with no retry.
      sub.status = SubscriptionStatus.CANCELED;
      sub.canceledAt = new Date();
      sub.statusReason = `canceled: the renewal charge the cancellation met failed (${reason})`;
      sub.nextPaymentAt = null;
      sub.nextMerchantUid = null;
      await em.flush();
      ctx.log.info({ subscriptionId: sub.id, merchantUid: payment.merchantUid }, "renewal failed after a cancellation; subscription canceled");
      return;
    }
    const delays = this.deps.config.retryScheduleSeconds;
    const hard = v.final === true || HARD_DECLINE.test(reason);
    if (attempt <= delays.length && !hard) {
      sub.status = SubscriptionStatus.PAST_DUE;
      sub.statusReason = `renewal failed (${reason}); retry ${attempt} of ${delays.length} scheduled`;
      const failedAt = payment.failedAt ?? new Date();
      await this.scheduleCharge(ctx, sub, period, attempt + 1, this.notBefore(new Date(failedAt.getTime() + delays[attempt - 1] * 1000), failedAt));
    } else {
      sub.status = SubscriptionStatus.UNPAID;
      sub.statusReason = hard ? `renewal declined for a reason retries cannot fix: ${reason}` : `retries exhausted: ${reason}`;
      sub.nextPaymentAt = null;
      sub.nextMerchantUid = null;
    }
    await em.flush();
    ctx.log.info({ subscriptionId: sub.id, period, attempt, status: sub.status }, "renewal failed");
  }

  /**
   * Cancels now (revoking the pending schedule at Iamport) or at the end of the
   * paid period (nothing further is scheduled). The subscription's open payments
   * and then the subscription are locked, in the renewal step's order, so a
   * renewal running at the same moment either finishes first (and its new
   * schedule is revoked here) or sees the cancellation and schedules nothing.
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
    const exists = await ctx.em.findOne(Subscription, { id });
    if (!exists) throw new NotFoundError(`Subscription ${input.id}`);
    if (exists.status === SubscriptionStatus.CANCELED) return exists;
    // Whether the paid period is over is a question for Iamport's clock, which runs the schedules.
    const now = await this.iamportNow();
    await ctx.em.transactional(async (em) => {
      const tx: Ctx = withEm(ctx, em);
      await em.find(
        Payment,
        { subscription: id, status: { $in: [PaymentStatus.SCHEDULED, PaymentStatus.PENDING] } },
        { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: "asc" } },
      );
      const sub = await em.findOneOrFail(Subscription, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
      if (sub.status === SubscriptionStatus.CANCELED) return;
      const wasAtPeriodEnd = sub.cancelAtPeriodEnd;
      const ran = await this.revokePending(tx, sub);
      sub.cancelReason = reason;
      sub.nextPaymentAt = null;
      sub.nextMerchantUid = null;
      if (ran.length > 0) {
        sub.cancelAtPeriodEnd = true;
        sub.statusReason = "cancels at the end of the period: a renewal charge Iamport may have made is being settled";
        await em.flush();
        const unsettled = await this.settleRan(tx, ran);
        // Declined: the renewal step ended it (the settling changed the row). Unknown: its webhook or reconciliation finishes it.
        if ((sub.status as SubscriptionStatus) === SubscriptionStatus.CANCELED || unsettled) return;
      }
      const periodStillPaid =
        sub.status === SubscriptionStatus.ACTIVE && !!sub.currentPeriodEnd && sub.currentPeriodEnd.getTime() > now.getTime();
      const paidByRenewal = periodStillPaid && (await this.paidBySchedule(tx, sub));
      if (periodStillPaid && (input.atPeriodEnd || paidByRenewal)) {
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
      await em.flush();
    });
    await ctx.em.refresh(exists);
    return exists;
  }

  /**
   * Settles, by merchant_uid, charges Iamport ran (or may be running) before
   * they could be revoked, through the webhook's verification and renewal
   * step, under the locks the caller holds. Returns true when one of them
   * could not be settled (Iamport has no payment for it yet, or cannot be asked).
   */
  private async settleRan(ctx: Ctx, ran: Payment[]): Promise<boolean> {
    let unsettled = false;
    for (const p of ran) {
      const askedAt = new Date();
      let ip: IamportPayment | null;
      try {
        ip = await this.findAtIamport(ctx, p.merchantUid);
      } catch (err) {
        ctx.log.warn({ merchantUid: p.merchantUid, err: (err as Error).message }, "charge met by a cancellation could not be looked up; left to its webhook");
        unsettled = true;
        continue;
      }
      if (ip) await this.payments.verifyFetched(ctx, ip, null, this.afterVerification, askedAt);
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
   * subscriptions that would still charge it (INCOMPLETE, PAST_DUE, or ACTIVE
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
   * subscriptions that can no longer be charged (CANCELED, UNPAID) are revoked
   * at Iamport, under the same locks as a cancellation. Returns how many
   * subscriptions were cleaned.
   */
  async revokeOrphans(ctx: Ctx, limit: number): Promise<number> {
    const rows = await ctx.em.find(
      Payment,
      {
        kind: PaymentKind.SCHEDULE,
        status: { $in: [PaymentStatus.SCHEDULED, PaymentStatus.PENDING] },
        subscription: { status: { $in: [SubscriptionStatus.CANCELED, SubscriptionStatus.UNPAID] } },
      },
      { limit, orderBy: { id: "asc" } },
    );
    const subs = [...new Set(rows.map((r) => r.subscription!.id))];
    for (const subId of subs) {
      await ctx.em.fork().transactional(async (em) => {
        await em.find(
          Payment,
          { subscription: subId, status: { $in: [PaymentStatus.SCHEDULED, PaymentStatus.PENDING] } },
          { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: "asc" } },
        );
        const sub = await em.findOneOrFail(Subscription, { id: subId }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
        if (sub.status === SubscriptionStatus.CANCELED || sub.status === SubscriptionStatus.UNPAID) await this.revokePending(withEm(ctx, em), sub);
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
        const open = await em.find(
          Payment,
          { subscription: id, status: { $in: [PaymentStatus.SCHEDULED, PaymentStatus.PENDING] } },
          { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: "asc" } },
        );
        const sub = await em.findOneOrFail(Subscription, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
        const over = sub.cancelAtPeriodEnd && !!sub.currentPeriodEnd && sub.currentPeriodEnd.getTime() <= now.getTime();
        if (sub.status === SubscriptionStatus.CANCELED || !over || open.length > 0) return false;
        sub.status = SubscriptionStatus.CANCELED;
        sub.canceledAt = now;
        sub.statusReason = "canceled at the end of the period";
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

  /** CONFLICT naming the customer's live subscription of this name, if there is one. */
  private async refuseLiveDuplicate(ctx: Ctx, customerUid: string, name: string): Promise<void> {
    const live = await ctx.em.findOne(Subscription, { customerUid, name, status: { $in: LIVE_SUBSCRIPTION_STATUSES } }, { orderBy: { id: "asc" } });
    if (!live) return;
    throw new ConflictError(
      `Customer ${customerUid} already has a live subscription named ${JSON.stringify(name)}: ${live.id} (${live.status}). Cancel it first, or pass allowDuplicate: true to start another`,
      { subscriptionId: live.id },
    );
  }

  private newPayment(ctx: Ctx, sub: Subscription, period: number, attempt: number, kind: PaymentKind, at: Date | null): Payment {
    return ctx.em.create(Payment, {
      merchantUid: renewalMerchantUid(sub.id, period, attempt),
      customerUid: sub.customerUid,
      name: sub.name,
      amount: sub.amount,
      kind,
      status: PaymentStatus.PENDING,
      scheduledAt: at,
      subscription: sub,
      period,
      attempt,
    });
  }

  /**
   * Registers the first payment of a subscription started with startAt. Iamport
   * refusing it (a time in its past, an unknown billing key) refuses the start;
   * an unknown outcome keeps the row PENDING for reconciliation.
   */
  private async scheduleFirst(ctx: Ctx, sub: Subscription, first: Payment): Promise<void> {
    try {
      await this.payments.registerSchedules(ctx, sub.customerUid, [first], { keepRowsOnRefusal: true });
    } catch (err) {
      if (err instanceof BadUserInputError) {
        ctx.em.remove([first, sub]);
        await ctx.em.flush();
        throw new BadUserInputError("startAt", `could not be scheduled: ${err.message}`);
      }
      const code = toAppError(err).code;
      if (code !== "UPSTREAM_UNAVAILABLE" && code !== "OUTCOME_UNKNOWN") throw err;
      sub.statusReason = "first payment not registered with Iamport yet: reconciliation will register it";
      await afterIamport(ctx, first.merchantUid, () => ctx.em.flush(), { unknown: (cause) => startUnknown(sub, first, cause) });
    }
  }

  /**
   * Creates the row of a future charge (unless it exists: a redelivered webhook)
   * and registers it with Iamport. A registration that fails leaves the row
   * PENDING for reconciliation instead of undoing the payment being recorded.
   */
  private async scheduleCharge(ctx: Ctx, sub: Subscription, period: number, attempt: number, at: Date): Promise<void> {
    const merchantUid = renewalMerchantUid(sub.id, period, attempt);
    let row = await ctx.em.findOne(Payment, { merchantUid });
    if (!row) {
      row = this.newPayment(ctx, sub, period, attempt, PaymentKind.SCHEDULE, at);
      await ctx.em.persistAndFlush(row);
    }
    sub.nextPaymentAt = row.scheduledAt ?? at;
    sub.nextMerchantUid = merchantUid;
    if (row.status === PaymentStatus.PENDING) await this.registerNext(ctx, sub, row);
  }

  /**
   * Registers a PENDING schedule row of a subscription with Iamport (the
   * renewal step, and reconciliation of a registration that failed). A row
   * whose time is already past by Iamport's clock, which Iamport refuses,
   * is moved to a minute from Iamport's now: it was never registered, so
   * moving it cannot double it. A row Iamport refuses for a reason of its own
   * (the billing key was deleted at Iamport...) can never run: it is settled
   * FAILED with Iamport's reason at once, through the renewal step, and since
   * Iamport would refuse its retries too, dunning ends there.
   */
  async registerNext(ctx: Ctx, sub: Subscription, row: Payment): Promise<void> {
    let refused: { error: BadUserInputError; at: Date } | null = null;
    try {
      try {
        await this.payments.registerSchedules(ctx, sub.customerUid, [row], { keepRowsOnRefusal: true });
      } catch (err) {
        if (!(err instanceof BadUserInputError) || row.status !== PaymentStatus.PENDING) throw err;
        const now = await this.iamportNow();
        if (!row.scheduledAt || row.scheduledAt.getTime() > now.getTime() + 5_000) {
          refused = { error: err, at: now };
        } else {
          row.scheduledAt = new Date(wholeSeconds(now).getTime() + 60_000);
          await ctx.em.flush();
          ctx.log.info({ subscriptionId: sub.id, merchantUid: row.merchantUid, at: row.scheduledAt }, "charge time already past at Iamport; moved");
          try {
            await this.payments.registerSchedules(ctx, sub.customerUid, [row], { keepRowsOnRefusal: true });
          } catch (again) {
            if (!(again instanceof BadUserInputError) || row.status !== PaymentStatus.PENDING) throw again;
            refused = { error: again, at: now };
          }
        }
      }
    } catch (err) {
      ctx.log.warn(
        { subscriptionId: sub.id, merchantUid: row.merchantUid, err: (err as Error).message },
        "next charge not registered yet; reconciliation will retry",
      );
    }
    if (sub.nextMerchantUid === row.merchantUid || !sub.nextMerchantUid) {
      sub.nextPaymentAt = row.scheduledAt ?? null;
      sub.nextMerchantUid = row.merchantUid;
    }
    await ctx.em.flush();
    if (refused) {
      const reason = this.payments.failRefused([row], refused.error, refused.at);
      ctx.log.warn({ subscriptionId: sub.id, merchantUid: row.merchantUid, reason }, "charge refused by Iamport's scheduler; counted as failed");
      await ctx.em.flush();
      await this.onPaymentVerified(ctx, row, PaymentStatus.PENDING, { outcome: "FAILED", status: PaymentStatus.FAILED, message: reason, final: true });
    }
  }

  /** Iamport refuses schedules in its past: a renewal confirmed late is charged a minute after it instead. */
  private notBefore(at: Date, iamportTime: Date | null | undefined): Date {
    const floor = wholeSeconds(iamportTime ?? new Date()).getTime() + 60_000;
    return at.getTime() < floor ? new Date(floor) : at;
  }

  /** Iamport's clock (from getToken's `now`); this server's when Iamport cannot be asked. */
  private async iamportNow(): Promise<Date> {
    try {
      return new Date((await this.deps.iamport.serverNow()) * 1000);
    } catch {
      return new Date();
    }
  }

  /** The payment Iamport has for an order, or null when it has none. */
  private async findAtIamport(ctx: Ctx, merchantUid: string): Promise<IamportPayment | null> {
    try {
      return await this.deps.iamport.findPayment(merchantUid, { requestId: ctx.requestId });
    } catch (err) {
      if (err instanceof IamportNotFoundError) return null;
      throw upstreamError(err, `payment ${merchantUid}`);
    }
  }

  /** Records a charge that was never made as FAILED, with the renewal step, under the row lock. */
  private async failUnmade(ctx: Ctx, payment: Payment, reason: string): Promise<void> {
    await ctx.em.transactional(async (em) => {
      const locked = await em.findOneOrFail(Payment, { id: payment.id }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
      if (locked.status !== PaymentStatus.PENDING) return;
      locked.status = PaymentStatus.FAILED;
      locked.failReason = reason;
      locked.failedAt = new Date();
      locked.checkedAt = new Date();
      await em.flush();
      await this.onPaymentVerified(withEm(ctx, em), locked, PaymentStatus.PENDING, { outcome: "FAILED", status: PaymentStatus.FAILED, message: reason });
    });
  }

  /**
   * Revokes the subscription's open schedules at Iamport. Returns those left
   * open: schedules Iamport already ran (or is running), whose charge is to
   * be settled by the caller.
   */
  private async revokePending(ctx: Ctx, sub: Subscription): Promise<Payment[]> {
    const pending = await ctx.em.find(Payment, {
      subscription: sub.id,
      status: { $in: [PaymentStatus.SCHEDULED, PaymentStatus.PENDING] },
      kind: PaymentKind.SCHEDULE,
    });
    if (pending.length === 0) return [];
    let revoked = new Set<string>();
    try {
      const result = await this.deps.iamport.unschedule(
        sub.customerUid,
        pending.map((p) => p.merchantUid),
        { requestId: ctx.requestId },
      );
      revoked = new Set(result.filter((s) => s.schedule_status === "revoked").map((s) => s.merchant_uid));
    } catch (err) {
      // Refused: nothing left to revoke (already ran, or never registered); each one is looked up below.
      if (!(err instanceof IamportRefusedError || err instanceof IamportNotFoundError)) throw upstreamError(err, "unschedule");
    }
    const unclear = pending.filter((p) => !revoked.has(p.merchantUid));
    for (const p of pending) if (revoked.has(p.merchantUid)) p.status = PaymentStatus.REVOKED;
    if (unclear.length > 0) {
      const neverRegistered = await this.payments.settleSchedules(ctx, unclear);
      for (const p of neverRegistered) p.status = PaymentStatus.REVOKED;
      // Registered after the revocation was sent (a registration that was still in flight): revoke it now.
      const lateArrivals = unclear.filter((p) => p.status === PaymentStatus.SCHEDULED && !p.impUid);
      if (lateArrivals.length > 0) {
        try {
          await this.deps.iamport.unschedule(sub.customerUid, lateArrivals.map((p) => p.merchantUid), { requestId: ctx.requestId });
        } catch (err) {
          if (!(err instanceof IamportRefusedError || err instanceof IamportNotFoundError)) throw upstreamError(err, "unschedule");
        }
        await this.payments.settleSchedules(ctx, lateArrivals);
      }
      for (const p of unclear) {
        if (p.impUid) ctx.log.warn({ subscriptionId: sub.id, merchantUid: p.merchantUid }, "schedule ran before it could be revoked");
      }
    }
    await ctx.em.flush();
    return pending.filter((p) => p.status === PaymentStatus.SCHEDULED || p.status === PaymentStatus.PENDING);
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

function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}
