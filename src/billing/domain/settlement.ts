import type { Payment } from "../../db/entities";
import { PaymentKind, PaymentStatus, SubscriptionStatus, type BillingInterval } from "../../db/entities/enums";
import type { ProviderPayment } from "../../provider/port";
import { periodOf } from "./billing-dates";
import { renewalMerchantUid } from "./merchant-uids";
import { paymentMayMove, subscriptionMayMove } from "./transitions";
import { changedSince, decide, supersedes, wouldChange, type Verification } from "./verdict";

/**
 * The decisions of the billing core, as pure functions: from what the rows
 * say and what Iamport answered to a plan. The executor (payments/settle.ts)
 * locks the rows, asks these, and writes what they return; nothing here
 * reads the clock, the database or Iamport.
 */

/**
 * Declines that a retry cannot fix (lost, stolen, suspended or expired card):
 * dunning stops at once and the subscription becomes UNPAID. Limit and
 * balance declines ("한도초과", "잔액부족") are retried on RETRY_SCHEDULE.
 */
export const HARD_DECLINE = /(분실|도난|정지|해지|유효기간|lost|stolen|suspend|expired|closed account|invalid card)/i;

// ---- Iamport's answer about one order ------------------------------------------

export type AnswerDecision =
  /** The row changed after the question was asked, and the answer would change it: ask again under the lock. */
  | { kind: "ask-again" }
  /** Another order's payment presented as this one's: neither order changes. */
  | { kind: "foreign"; verdict: Verification }
  /** About another attempt of this order, or a move the status table forbids: the order stays as it is. */
  | { kind: "kept"; verdict: Verification; message: string }
  /** Applied to the order (applyVerification). */
  | { kind: "apply"; verdict: Verification };

type OrderRow = Pick<Payment, "merchantUid" | "status" | "amount" | "impUid" | "checkedAt" | "cancelledAmount">;

/**
 * What to do with Iamport's answer `ip` (asked for at `askedAt`) about the
 * order `row`, read under its lock. `askedAgain`: the answer was fetched
 * under the lock, so it is not older than the row.
 */
export function decideAnswer(row: OrderRow, ip: ProviderPayment, askedAt: Date, askedAgain: boolean): AnswerDecision {
  if (!askedAgain && ip.merchant_uid === row.merchantUid && changedSince(row, askedAt) && wouldChange(row, ip)) return { kind: "ask-again" };
  const verdict = decide(row, ip);
  if (ip.merchant_uid !== row.merchantUid) return { kind: "foreign", verdict };
  if (!supersedes(row, ip)) {
    return { kind: "kept", verdict, message: `${verdict.message} (attempt ${ip.imp_uid}; the order stays ${row.status} with ${row.impUid})` };
  }
  if (!paymentMayMove(row.status, verdict.status)) {
    return { kind: "kept", verdict, message: `${verdict.message} (an order never moves from ${row.status} to ${verdict.status}; it stays ${row.status})` };
  }
  return { kind: "apply", verdict };
}

// ---- a subscription charge's outcome --------------------------------------------

/** A subscription's charge whose status changed (from `previous`). */
export interface ChargeFacts {
  merchantUid: string;
  status: PaymentStatus;
  previous: PaymentStatus;
  kind: PaymentKind;
  period: number;
  attempt: number;
  paidAt?: Date | null;
  failedAt?: Date | null;
  failReason?: string | null;
  /** A failure no retry can mend (Iamport refused to schedule the charge, so it would refuse its retries too). */
  final?: boolean;
}

export interface SubscriptionFacts {
  id: string;
  status: SubscriptionStatus;
  currentPeriod: number;
  anchorAt: Date;
  interval: BillingInterval;
  intervalCount: number;
  cancelAtPeriodEnd: boolean;
}

export interface BillingPolicy {
  timeZone: string;
  /** Delay of each retry after a soft decline, in seconds (RETRY_SCHEDULE). */
  retryDelaysSeconds: readonly number[];
}

/** The fields of the subscription a plan sets (the others stay). */
export interface SubscriptionChange {
  status?: SubscriptionStatus;
  statusReason?: string | null;
  anchorAt?: Date;
  currentPeriod?: number;
  currentPeriodStart?: Date;
  currentPeriodEnd?: Date;
  canceledAt?: Date;
  nextPaymentAt?: Date | null;
  nextMerchantUid?: string | null;
}

/** The charge to create (unless it exists: a redelivery) and register with Iamport. */
export interface NextCharge {
  merchantUid: string;
  period: number;
  attempt: number;
  at: Date;
}

export interface LogFact {
  level: "info" | "warn" | "error";
  message: string;
  fields: Record<string, unknown>;
}

export interface SubscriptionPlan {
  /** Null: the subscription is left as it is. */
  change: SubscriptionChange | null;
  next: NextCharge | null;
  log: LogFact | null;
  /**
   * A charge of Iamport's scheduler settled (renewals, retries, a first charge
   * given startAt): billing_renewals_total, or the retries' counter for
   * attempt > 1. A first charge made at once is not a renewal: null.
   */
  settled: { status: PaymentStatus; attempt: number } | null;
}

const NOTHING: SubscriptionPlan = { change: null, next: null, log: null, settled: null };

/**
 * The renewal step: what a subscription charge's new status means for its
 * subscription. `later`: the merchant_uids of the subscription's charges
 * after this one (a later period, or a later attempt of its period), read
 * under the subscription's lock. `now`: Iamport's or this server's clock
 * (the floor of a next charge's time when no paidAt/failedAt is known).
 */
export function planSubscriptionStep(
  charge: ChargeFacts,
  sub: SubscriptionFacts,
  later: readonly string[],
  policy: BillingPolicy,
  now: Date,
): SubscriptionPlan {
  if (charge.status === charge.previous) return NOTHING;
  const { period, attempt } = charge;
  const settled = charge.kind === PaymentKind.SCHEDULE ? { status: charge.status, attempt } : null;
  const ids = { subscriptionId: sub.id, merchantUid: charge.merchantUid, period, attempt };
  const base: SubscriptionPlan = { ...NOTHING, settled };

  if (sub.status === SubscriptionStatus.CANCELED) {
    return { ...base, log: { level: "warn", message: "payment of a canceled subscription", fields: { ...ids, status: charge.status } } };
  }
  if (charge.status === PaymentStatus.FORGERY_SUSPECTED) {
    return {
      ...base,
      log: { level: "error", message: "subscription payment forgery suspected", fields: ids },
    };
  }
  if (charge.status !== PaymentStatus.PAID && charge.status !== PaymentStatus.FAILED) return base;

  // An outcome that arrives after the subscription moved past it (a late webhook
  // of an earlier attempt) must not rewind it: only the latest charge decides.
  const nextKey = charge.status === PaymentStatus.PAID ? renewalMerchantUid(sub.id, period + 1, 1) : renewalMerchantUid(sub.id, period, attempt + 1);
  if (later.some((uid) => uid !== nextKey)) {
    return { ...base, log: { level: "info", message: "outcome of a superseded attempt; nothing to do", fields: { ...ids, status: charge.status } } };
  }

  return charge.status === PaymentStatus.PAID ? planPaid(charge, sub, policy, now, base) : planFailed(charge, sub, policy, now, base);
}

function planPaid(charge: ChargeFacts, sub: SubscriptionFacts, policy: BillingPolicy, now: Date, base: SubscriptionPlan): SubscriptionPlan {
  const { period, attempt } = charge;
  const change: SubscriptionChange = {};
  let anchor = sub.anchorAt;
  if (sub.currentPeriod === 0 && period === 1 && charge.kind === PaymentKind.AGAIN && charge.paidAt) {
    // Charged at once: the first period starts when Iamport took the money, by Iamport's clock.
    anchor = wholeSeconds(charge.paidAt);
    change.anchorAt = anchor;
  }
  if (period > sub.currentPeriod) {
    const p = periodOf(anchor, sub.interval, sub.intervalCount, period, policy.timeZone);
    change.currentPeriod = period;
    change.currentPeriodStart = p.start;
    change.currentPeriodEnd = p.end;
  }
  change.status = checked(sub.status, SubscriptionStatus.ACTIVE);
  // A cancellation that met this charge takes effect at the end of the period it paid for.
  change.statusReason = sub.cancelAtPeriodEnd ? "cancels at the end of the current period, which its renewal charge paid for" : null;
  change.nextPaymentAt = null;
  change.nextMerchantUid = null;
  let next: NextCharge | null = null;
  if (!sub.cancelAtPeriodEnd) {
    // Retries never move the anchor: the next period starts on its boundary whatever day this one was paid.
    const boundary = periodOf(anchor, sub.interval, sub.intervalCount, period + 1, policy.timeZone).start;
    next = { merchantUid: renewalMerchantUid(sub.id, period + 1, 1), period: period + 1, attempt: 1, at: notBefore(boundary, charge.paidAt ?? now) };
  }
  const ids = { subscriptionId: sub.id, merchantUid: charge.merchantUid, period, attempt };
  return {
    ...base,
    change,
    next,
    log: { level: "info", message: "renewal paid", fields: ids },
  };
}

function planFailed(charge: ChargeFacts, sub: SubscriptionFacts, policy: BillingPolicy, now: Date, base: SubscriptionPlan): SubscriptionPlan {
  const { period, attempt } = charge;
  const ids = { subscriptionId: sub.id, merchantUid: charge.merchantUid, period, attempt };
  const reason = charge.failReason ?? "";
  const ended = (statusReason: string, message: string): SubscriptionPlan => ({
    ...base,
    change: { status: checked(sub.status, SubscriptionStatus.CANCELED), canceledAt: now, statusReason, nextPaymentAt: null, nextMerchantUid: null },
    log: { level: "info", message, fields: ids },
  });
  if (sub.status === SubscriptionStatus.INCOMPLETE && period === 1 && charge.kind === PaymentKind.AGAIN) {
    // A declined first charge leaves no active subscription.
    return ended(`first payment declined: ${charge.failReason ?? "unknown reason"}`, "first payment declined; subscription canceled");
  }
  if (sub.cancelAtPeriodEnd) {
    // Canceled while this charge's outcome was unknown: no period was paid after the one that
    // ended, so the subscription ends now, with no retry.
    return ended(`canceled: the renewal charge the cancellation met failed (${reason})`, "renewal failed after a cancellation; subscription canceled");
  }
  const delays = policy.retryDelaysSeconds;
  const hard = charge.final === true || HARD_DECLINE.test(reason);
  if (attempt <= delays.length && !hard) {
    const failedAt = charge.failedAt ?? now;
    const statusReason = `renewal failed (${reason}); retry ${attempt} of ${delays.length} scheduled`;
    return {
      ...base,
      change: { status: checked(sub.status, SubscriptionStatus.PAST_DUE), statusReason },
      next: {
        merchantUid: renewalMerchantUid(sub.id, period, attempt + 1),
        period,
        attempt: attempt + 1,
        at: notBefore(new Date(failedAt.getTime() + delays[attempt - 1] * 1000), failedAt),
      },
      log: { level: "info", message: "renewal failed", fields: { ...ids, status: SubscriptionStatus.PAST_DUE } },
    };
  }
  const statusReason = hard ? `renewal declined for a reason retries cannot fix: ${reason}` : `retries exhausted: ${reason}`;
  return {
    ...base,
    change: { status: checked(sub.status, SubscriptionStatus.UNPAID), statusReason, nextPaymentAt: null, nextMerchantUid: null },
    log: { level: "info", message: "renewal failed", fields: { ...ids, status: SubscriptionStatus.UNPAID } },
  };
}

/** The status table's word on a move the renewal step plans: a plan it forbids is a bug, never written. */
function checked(from: SubscriptionStatus, to: SubscriptionStatus): SubscriptionStatus {
  if (!subscriptionMayMove(from, to)) throw new Error(`a subscription never moves from ${from} to ${to}`);
  return to;
}

/** Iamport refuses schedules in its past: a charge planned before `floor` plus a minute is made a minute after it. */
export function notBefore(at: Date, floor: Date): Date {
  const min = wholeSeconds(floor).getTime() + 60_000;
  return at.getTime() < min ? new Date(min) : at;
}

/** Iamport keeps times in whole seconds, and period boundaries must match them. */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}
