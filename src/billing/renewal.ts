import type { Payment } from "../db/entities";
import { PaymentStatus, SubscriptionStatus, type BillingInterval, type PaymentKind } from "../db/entities/enums";
import { pgTime, transaction } from "../db/sql";
import { IamportNotFoundError, IamportRefusedError } from "../iamport/iamport.errors";
import type { IamportPayment } from "../iamport/iamport.types";
import { periodOf } from "./billing-dates";
import type { BillingDeps, Ctx } from "./context";
import { changedSince, paymentView, PAYMENT_VIEW_COLUMNS, wouldChange, type PaymentService, type PaymentViewRow, type VerifiedPayment } from "./payment.service";
import type { BillingObservers } from "./services";
import { renewalMerchantUid } from "./subscription.service";
import { applyVerification, decide, supersedes } from "./verification";

/** A payment row with what the verification needs beyond what GraphQL shows, and its subscription (s_). */
interface Row extends PaymentViewRow {
  kind: PaymentKind;
  pay_method: string | null;
  checked_at: string | Date | null;
  period: number | null;
  attempt: number | null;
  s_id: string;
  s_customer_uid: string;
  s_name: string;
  s_amount: number;
  s_interval: BillingInterval;
  s_interval_count: number;
  s_anchor_at: string | Date;
  s_status: SubscriptionStatus;
  s_current_period: number;
  s_cancel_at_period_end: boolean;
}

const PAYMENT_COLUMNS = `${PAYMENT_VIEW_COLUMNS}, kind, pay_method, checked_at, period, attempt`;

/** The payment and its subscription, locked in that order (built once: see `shaped` in db/sql.ts). */
const LOCK_TEXT = `select ${PAYMENT_COLUMNS.split(", ").map((c) => `p.${c}`).join(", ")},
        s.id as s_id, s.customer_uid as s_customer_uid, s.name as s_name, s.amount as s_amount, s.interval as s_interval,
        s.interval_count as s_interval_count, s.anchor_at as s_anchor_at, s.status as s_status,
        s.current_period as s_current_period, s.cancel_at_period_end as s_cancel_at_period_end
   from payments p join subscriptions s on s.id = p.subscription_id
  where p.merchant_uid = $1
    for update`;

/** Thrown inside the transaction to roll it back and leave the renewal to the general path. */
class TakeGeneralPath extends Error {}

/**
 * The renewal of the first of the month, in one transaction of three
 * statements and the commit: the schedule webhook of a subscription charge that
 * Iamport reports paid, for an ACTIVE or PAST_DUE subscription with nothing
 * after this charge yet. Under the same row locks and in the same order as the
 * general path (payment, then subscription), it applies the same verdict
 * (`decide`, `supersedes`, `applyVerification`), registers the next period's
 * charge with Iamport, and writes the payment, the next charge, the webhook
 * event and the subscription in one statement.
 *
 * The next charge is SCHEDULED when Iamport confirmed it, and PENDING when the
 * outcome is unknown (timeout, Iamport down): committed with the payment, as
 * the general path's registerNext leaves it, for cancellation and
 * reconciliation to find. Everything else (a first payment, a decline, a
 * redelivery, a stale answer, a canceled subscription, an Iamport refusal, a
 * database error) returns null with nothing written, and the caller runs the
 * general path (PaymentService.verifyFetched + onPaymentVerified), which knows
 * every case. The general path stays the reference; this one only skips the
 * unit of work (18 statements, ~6.5 ms of CPU a renewal: bench/README.md).
 */
export class FastRenewal {
  constructor(
    private readonly deps: BillingDeps,
    private readonly payments: PaymentService,
    private readonly observers: BillingObservers = {},
  ) {}

  async run(ctx: Ctx, ip: IamportPayment, fetchedAt: Date, eventId?: string): Promise<VerifiedPayment | null> {
    if (ip.status !== "paid" || !ip.merchant_uid) return null;
    const tz = this.deps.config.billingTimeZone;
    let done: { payment: Payment; subscriptionId: string; period: number; attempt: number; next: string } | null;
    try {
      done = await transaction(ctx.db ?? ctx.em, async (q) => {
        // The payment and its subscription, locked in that order (as the general path and cancellations do).
        const [row] = await q<Row>(LOCK_TEXT, [ip.merchant_uid]);
        if (!row || row.subscription_id === null || row.status === PaymentStatus.PAID) return null;
        const payment = toPayment(row);
        if (changedSince(payment, fetchedAt) && wouldChange(payment, ip)) return null;
        if (!supersedes(payment, ip)) return null;
        const v = decide(payment, ip);
        if (v.status !== PaymentStatus.PAID) return null;
        const period = row.period ?? 1;
        const attempt = row.attempt ?? 1;
        if (row.s_cancel_at_period_end || row.s_current_period < 1) return null;
        if (row.s_status !== SubscriptionStatus.ACTIVE && row.s_status !== SubscriptionStatus.PAST_DUE) return null;
        const subscriptionId = row.s_id;
        // Asked once both locks are held, in a statement of its own: a subquery of the locking statement
        // would read the snapshot taken before it waited for the locks, missing rows committed meanwhile.
        const [later] = await q<{ found: boolean }>(
          `select exists (select 1 from payments where subscription_id = $1 and (period > $2 or (period = $2 and attempt > $3))) as found`,
          [subscriptionId, period, attempt],
        );
        if (later.found) return null;

        applyVerification(payment, ip, v);
        const anchor = pgTime(row.s_anchor_at)!;
        // Period n ends where period n+1 starts (both are boundaries from the anchor: billing-dates.ts).
        const paidPeriod = periodOf(anchor, row.s_interval, row.s_interval_count, period, tz);
        const current = period > row.s_current_period ? paidPeriod : null;
        const nextStart = paidPeriod.end;
        // Iamport refuses schedules in its past: a renewal confirmed late is charged a minute after it.
        const floor = Math.floor((payment.paidAt ?? new Date()).getTime() / 1000) * 1000 + 60_000;
        const at = nextStart.getTime() < floor ? new Date(floor) : nextStart;
        const next = renewalMerchantUid(subscriptionId, period + 1, 1);

        // Registered: SCHEDULED at Iamport's time. Refused: nothing was registered, so the general path may
        // take it from the start (it moves a time Iamport finds past, or fails the attempt). Unknown (timeout,
        // Iamport down, an answer without this schedule): the next charge is committed PENDING with the
        // payment, locks held until then, so a cancellation sees it and revokes it, and reconciliation
        // looks it up by merchant_uid and registers it if Iamport never got it, as registerNext leaves it.
        let scheduledAt = at;
        let registered = false;
        const entry = {
          merchant_uid: next,
          schedule_at: Math.floor(at.getTime() / 1000),
          amount: row.s_amount,
          name: row.s_name,
          currency: "KRW",
          notice_url: this.payments.scheduleNoticeUrl(),
        };
        const register = async (): Promise<void> => {
          const results = await this.deps.iamport.schedule(row.s_customer_uid, [entry], { requestId: ctx.requestId });
          const mine = results.find((r) => r.merchant_uid === next);
          if (mine?.schedule_status === "scheduled") {
            scheduledAt = new Date(mine.schedule_at * 1000);
            registered = true;
          }
        };
        try {
          await register();
        } catch (err) {
          if (err instanceof IamportRefusedError) throw new TakeGeneralPath("schedule refused");
          // Unknown outcome: asked by merchant_uid, and sent once more only if Iamport never got it
          // (Iamport refuses a second schedule with the same merchant_uid), as registerSchedules does.
          try {
            const found = await this.deps.iamport.getSchedule(next, { requestId: ctx.requestId });
            if (found.schedule_status === "scheduled") {
              scheduledAt = new Date(found.schedule_at * 1000);
              registered = true;
            }
          } catch (lookup) {
            if (lookup instanceof IamportNotFoundError) await register().catch(() => undefined);
          }
        }
        if (!registered) {
          ctx.log.warn({ subscriptionId, merchantUid: next }, "next charge not registered yet; reconciliation will retry");
        }

        const now = new Date();
        try {
          await q(
            `with pay as (
               update payments set status = $2, imp_uid = $3, paid_amount = $4, cancelled_amount = $5, paid_at = $6, failed_at = $7,
                      cancelled_at = $8, fail_reason = $9, receipt_url = $10, pay_method = $11, currency = $12, iamport = $13,
                      checked_at = $14, updated_at = $14
                where id = $1 returning id
             ), nxt as (
               insert into payments (merchant_uid, customer_uid, name, amount, cancelled_amount, currency, status, kind, scheduled_at,
                                     subscription_id, period, attempt, checked_at, created_at, updated_at)
               values ($15, $16, $17, $18, 0, 'KRW', $26, 'SCHEDULE', $19, $20, $21, 1, $27, $14, $14) returning id
             ), ev as (
               update webhook_events set attempts = attempts + 1, outcome = 'PAID', processed_at = $14 where id = $25 returning id
             )
             update subscriptions set status = 'ACTIVE', status_reason = null,
                    current_period = coalesce($22, current_period), current_period_start = coalesce($23, current_period_start),
                    current_period_end = coalesce($24, current_period_end),
                    next_payment_at = $19, next_merchant_uid = $15, updated_at = $14
              where id = $20 and exists (select 1 from pay) and exists (select 1 from nxt)`,
            [
              payment.id,
              payment.status,
              payment.impUid,
              payment.paidAmount,
              payment.cancelledAmount,
              payment.paidAt,
              payment.failedAt,
              payment.cancelledAt,
              payment.failReason,
              payment.receiptUrl,
              payment.payMethod,
              payment.currency,
              JSON.stringify(payment.iamport),
              now,
              next,
              row.s_customer_uid,
              row.s_name,
              row.s_amount,
              scheduledAt,
              subscriptionId,
              period + 1,
              current ? period : null,
              current?.start ?? null,
              current?.end ?? null,
              eventId ?? null,
              registered ? PaymentStatus.SCHEDULED : PaymentStatus.PENDING,
              registered ? now : null,
            ],
          );
        } catch (err) {
          ctx.log.warn({ subscriptionId, err: (err as Error).message }, "renewal write failed after the schedule call; general path");
          throw new TakeGeneralPath("write");
        }
        return { payment, subscriptionId, period, attempt, next };
      });
    } catch (err) {
      if (err instanceof TakeGeneralPath) return null;
      throw err;
    }
    if (!done) return null;
    this.observers.subscriptionCharge?.(PaymentStatus.PAID, done.attempt);
    if (this.deps.logger.isLevelEnabled("info")) {
      ctx.log.info({ subscriptionId: done.subscriptionId, period: done.period, attempt: done.attempt, merchantUid: done.payment.merchantUid, next: done.next }, "renewal paid");
    }
    return { payment: done.payment, outcome: "PAID", status: PaymentStatus.PAID, message: "Paid", applied: true, eventSettled: eventId !== undefined };
  }
}

/** The row as the fields of a Payment that the verification reads and writes. */
function toPayment(r: Row): Payment {
  return {
    ...paymentView(r),
    kind: r.kind,
    payMethod: r.pay_method,
    checkedAt: pgTime(r.checked_at),
    period: r.period,
    attempt: r.attempt,
  } as unknown as Payment;
}
