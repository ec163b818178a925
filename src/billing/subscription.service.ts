import { LockMode, type FilterQuery } from "@mikro-orm/core";
import { Payment, Subscription } from "../db/entities";
import { BillingInterval, PaymentKind, PaymentStatus, SubscriptionStatus } from "../db/entities/enums";
import { BadUserInputError, NotFoundError, toAppError } from "../errors";
import { IamportNotFoundError, IamportRefusedError } from "../iamport/iamport.errors";
import { periodOf } from "./billing-dates";
import type { CardService } from "./card.service";
import { BillingDeps, Ctx, randomId, upstreamError } from "./context";
import { decodeCursor, encodeCursor, Page } from "./pagination";
import { checkFirst, PaymentService } from "./payment.service";
import { checkAmount, checkFuture, checkText, checkUid, optionalText } from "./validation";
import type { Verification } from "./verification";

export interface StartSubscriptionInput {
  customerUid: string;
  name: string;
  amount: number;
  interval: BillingInterval;
  intervalCount?: number | null;
  startAt?: Date | null;
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
    await this.cards.requireActive(ctx, customerUid);

    const sub = ctx.em.create(Subscription, {
      id: `s${randomId(11)}`,
      customerUid,
      name,
      amount,
      interval: input.interval,
      intervalCount,
      // Whole seconds: Iamport schedules are in UNIX seconds, and period boundaries must match them.
      anchorAt: new Date(Math.floor((startAt ?? new Date()).getTime() / 1000) * 1000),
      status: startAt ? SubscriptionStatus.ACTIVE : SubscriptionStatus.INCOMPLETE,
      statusReason: startAt ? "first payment scheduled" : "first payment in progress",
    });
    const first = this.newPayment(ctx, sub, 1, 1, startAt ? PaymentKind.SCHEDULE : PaymentKind.AGAIN, startAt);
    await ctx.em.persistAndFlush([sub, first]);

    if (startAt) {
      await this.registerNext(ctx, sub, first);
      return sub;
    }
    try {
      await this.chargeAndApply(ctx, first);
    } catch (err) {
      const e = toAppError(err);
      if (e.code !== "UPSTREAM_UNAVAILABLE") throw err;
      sub.statusReason = "first payment not confirmed yet: it will be settled with Iamport by reconciliation";
      await ctx.em.flush();
      return sub;
    }
    await ctx.em.refresh(sub);
    return sub;
  }

  /**
   * Charges a PENDING subscription payment now (same merchant_uid, so never
   * twice) and applies the outcome exactly as a webhook would, under the row lock.
   */
  async chargeAndApply(ctx: Ctx, payment: Payment): Promise<void> {
    await this.payments.executeAgain(ctx, payment, { repeatOnNoRecord: false });
    await ctx.em.transactional(async (em) => {
      const locked = await em.findOneOrFail(Payment, { id: payment.id }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
      await this.onPaymentVerified({ ...ctx, em }, locked, PaymentStatus.PENDING, { status: locked.status, outcome: "PAID", message: "" });
    });
  }

  /**
   * The renewal step. Runs inside the verification transaction with the
   * payment row locked, so concurrent deliveries of one webhook act once; the
   * next payment's row has a unique (subscription, period, attempt) key.
   */
  async onPaymentVerified(ctx: Ctx, payment: Payment, previous: PaymentStatus, _v: Verification): Promise<void> {
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

    if (payment.status === PaymentStatus.PAID) {
      if (period > sub.currentPeriod) {
        const p = periodOf(sub.anchorAt, sub.interval, sub.intervalCount, period, tz);
        sub.currentPeriod = period;
        sub.currentPeriodStart = p.start;
        sub.currentPeriodEnd = p.end;
      }
      sub.status = SubscriptionStatus.ACTIVE;
      sub.statusReason = null;
      sub.nextPaymentAt = null;
      sub.nextMerchantUid = null;
      if (!sub.cancelAtPeriodEnd) {
        const next = periodOf(sub.anchorAt, sub.interval, sub.intervalCount, period + 1, tz);
        await this.scheduleCharge(ctx, sub, period + 1, 1, this.notBefore(next.start, payment.paidAt));
      }
      await em.flush();
      ctx.log.info({ subscriptionId: sub.id, period, merchantUid: payment.merchantUid }, "renewal paid");
      return;
    }

    if (payment.status === PaymentStatus.FAILED) {
      if (sub.status === SubscriptionStatus.INCOMPLETE && period === 1 && payment.kind === PaymentKind.AGAIN) {
        // A declined first charge leaves no active subscription.
        sub.status = SubscriptionStatus.CANCELED;
        sub.canceledAt = new Date();
        sub.statusReason = `first payment declined: ${payment.failReason ?? "unknown reason"}`;
        sub.nextPaymentAt = null;
        await em.flush();
        return;
      }
      const delays = this.deps.config.retryScheduleSeconds;
      const reason = payment.failReason ?? "";
      if (attempt <= delays.length && !HARD_DECLINE.test(reason)) {
        sub.status = SubscriptionStatus.PAST_DUE;
        sub.statusReason = `renewal failed (${reason}); retry ${attempt} of ${delays.length} scheduled`;
        const failedAt = payment.failedAt ?? new Date();
        const at = new Date(failedAt.getTime() + delays[attempt - 1] * 1000);
        await this.scheduleCharge(ctx, sub, period, attempt + 1, at);
      } else {
        sub.status = SubscriptionStatus.UNPAID;
        sub.statusReason = HARD_DECLINE.test(reason)
          ? `renewal declined for a reason retries cannot fix: ${reason}`
          : `retries exhausted: ${reason}`;
        sub.nextPaymentAt = null;
        sub.nextMerchantUid = null;
      }
      await em.flush();
      ctx.log.info({ subscriptionId: sub.id, period, attempt, status: sub.status }, "renewal failed");
      return;
    }

    if (payment.status === PaymentStatus.FORGERY_SUSPECTED) {
      ctx.log.error({ subscriptionId: sub.id, merchantUid: payment.merchantUid }, "subscription payment forgery suspected");
    }
  }

  /** Cancels now (revoking the pending schedule) or at the end of the paid period. */
  async cancel(ctx: Ctx, input: CancelSubscriptionInput): Promise<Subscription> {
    const reason = optionalText("reason", input.reason, 200) ?? null;
    const sub = await ctx.em.findOne(Subscription, { id: input.id });
    if (!sub) throw new NotFoundError(`Subscription ${input.id}`);
    if (sub.status === SubscriptionStatus.CANCELED) return sub;
    await this.revokePending(ctx, sub);
    sub.cancelReason = reason;
    sub.nextPaymentAt = null;
    sub.nextMerchantUid = null;
    const periodStillPaid = sub.currentPeriodEnd && sub.currentPeriodEnd.getTime() > Date.now() && sub.status === SubscriptionStatus.ACTIVE;
    if (input.atPeriodEnd && periodStillPaid) {
      sub.cancelAtPeriodEnd = true;
      sub.statusReason = "cancels at the end of the current period";
    } else {
      sub.status = SubscriptionStatus.CANCELED;
      sub.canceledAt = new Date();
      sub.statusReason = "canceled";
    }
    await ctx.em.flush();
    return sub;
  }

  /** Marks subscriptions set to cancel at period end as CANCELED once their period is over. */
  async expireCanceledAtPeriodEnd(ctx: Ctx, now: Date): Promise<number> {
    const due = await ctx.em.find(Subscription, {
      cancelAtPeriodEnd: true,
      status: { $ne: SubscriptionStatus.CANCELED },
      currentPeriodEnd: { $lte: now },
    });
    for (const s of due) {
      s.status = SubscriptionStatus.CANCELED;
      s.canceledAt = now;
      s.statusReason = "canceled at the end of the period";
    }
    await ctx.em.flush();
    return due.length;
  }

  async get(ctx: Ctx, id: string): Promise<Subscription | null> {
    return ctx.em.findOne(Subscription, { id });
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
    if (filter.customerUid) where.customerUid = filter.customerUid;
    if (filter.status) where.status = filter.status;
    if (after) where.id = { $lt: decodeCursor("after", after) };
    const rows = await ctx.em.find(Subscription, where, { orderBy: { id: "desc" }, limit: limit + 1 });
    const hasNextPage = rows.length > limit;
    const nodes = hasNextPage ? rows.slice(0, limit) : rows;
    return { nodes, pageInfo: { hasNextPage, endCursor: nodes.length ? encodeCursor(nodes[nodes.length - 1].id) : null } };
  }

  // ---- internals -------------------------------------------------------------

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

  private async registerNext(ctx: Ctx, sub: Subscription, row: Payment): Promise<void> {
    sub.nextPaymentAt = row.scheduledAt ?? null;
    sub.nextMerchantUid = row.merchantUid;
    try {
      await this.payments.registerSchedules(ctx, sub.customerUid, [row], { keepRowsOnRefusal: true });
    } catch (err) {
      ctx.log.warn(
        { subscriptionId: sub.id, merchantUid: row.merchantUid, err: (err as Error).message },
        "next charge not registered yet; reconciliation will retry",
      );
    }
  }

  /** Iamport refuses schedules in its past: a renewal confirmed late is charged right away instead. */
  private notBefore(at: Date, iamportTime: Date | null | undefined): Date {
    const floor = (iamportTime ?? new Date()).getTime() + 60_000;
    return at.getTime() < floor ? new Date(floor) : at;
  }

  private async revokePending(ctx: Ctx, sub: Subscription): Promise<void> {
    const pending = await ctx.em.find(Payment, {
      subscription: sub.id,
      status: { $in: [PaymentStatus.SCHEDULED, PaymentStatus.PENDING] },
      kind: PaymentKind.SCHEDULE,
    });
    if (pending.length === 0) return;
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
    }
    await ctx.em.flush();
  }
}
