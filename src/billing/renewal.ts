import type { Payment } from "../db/entities";
import { PaymentStatus, SubscriptionStatus, type BillingInterval, type PaymentKind } from "../db/entities/enums";
import { TurnBatcher, type Pending } from "../db/batch";
import { pgTime, transaction } from "../db/sql";
import { IamportNotFoundError, IamportRefusedError } from "../iamport/iamport.errors";
import type { IamportPayment } from "../iamport/iamport.types";
import { periodOf } from "./billing-dates";
import type { BillingDeps, Ctx } from "./context";
import { changedSince, paymentView, PAYMENT_VIEW_COLUMNS, wouldChange, type PaymentService, type PaymentViewRow, type VerifiedPayment } from "./payment.service";
import type { BillingObservers } from "./services";
import { renewalMerchantUid } from "./subscription.service";
import { applyVerification, decide, supersedes, type Verification } from "./verification";

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

/**
 * The payments named, then their subscriptions, locked in that order (as the
 * general path and cancellations lock: payment, then subscription), each
 * table in id order, so two batches cannot wait on each other. Every table is
 * reached by its key with `= any(...)` (the subscriptions' ids come from the
 * locked payments, as an array): the plan is an index look-up per row whatever
 * the tables' sizes, also as a generic plan (`keyedPlans`). Built once (see
 * `shaped` in db/sql.ts).
 */
export const LOCK_TEXT = `with p as (
   select ${PAYMENT_COLUMNS} from payments where merchant_uid = any($1::text[]) and subscription_id is not null order by id for update
 ), s as (
   select id, customer_uid, name, amount, interval, interval_count, anchor_at, status, current_period, cancel_at_period_end
     from subscriptions where id = any(array(select subscription_id from p)) order by id for update
 )
 select ${PAYMENT_COLUMNS.split(", ").map((c) => `p.${c}`).join(", ")},
        s.id as s_id, s.customer_uid as s_customer_uid, s.name as s_name, s.amount as s_amount, s.interval as s_interval,
        s.interval_count as s_interval_count, s.anchor_at as s_anchor_at, s.status as s_status,
        s.current_period as s_current_period, s.cancel_at_period_end as s_cancel_at_period_end
   from p join s on s.id = p.subscription_id`;

/**
 * Of the subscription charges named, those whose subscription has a charge
 * after them (a later period, or a later attempt of the same period).
 * Sent after LOCK_TEXT in the same round trip, as a statement of its own:
 * a subquery of the locking statement would read the snapshot taken before
 * it waited for the locks, missing rows committed meanwhile; this one's
 * snapshot is taken once the locks are held.
 */
export const LATER_TEXT = `select p0.merchant_uid from payments p0
  where p0.merchant_uid = any($1::text[]) and p0.subscription_id is not null
    and exists (select 1 from payments p where p.subscription_id = p0.subscription_id
                   and (p.period > coalesce(p0.period, 1) or (p.period = coalesce(p0.period, 1) and p.attempt > coalesce(p0.attempt, 1))))`;

/** The paid payments, the next charges, the webhook events and the subscriptions of a batch, in one statement. */
export const WRITE_TEXT = `with v as (
   select * from unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::int[], $6::timestamptz[], $7::timestamptz[],
                        $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                        $16::text[], $17::int[], $18::timestamptz[], $19::text[], $20::int[], $21::int[], $22::timestamptz[],
                        $23::timestamptz[], $24::bigint[], $25::text[], $26::timestamptz[])
     as v(pid, status, imp_uid, paid_amount, cancelled_amount, paid_at, failed_at, cancelled_at, fail_reason, receipt_url,
          pay_method, currency, iamport, next, customer_uid, name, amount, scheduled_at, sid, next_period, cur_period,
          cur_start, cur_end, event_id, next_status, next_checked_at)
 ), pay as (
   update payments p set status = v.status, imp_uid = v.imp_uid, paid_amount = v.paid_amount, cancelled_amount = v.cancelled_amount,
          paid_at = v.paid_at, failed_at = v.failed_at, cancelled_at = v.cancelled_at, fail_reason = v.fail_reason,
          receipt_url = v.receipt_url, pay_method = v.pay_method, currency = v.currency, iamport = v.iamport::jsonb,
          checked_at = $27, updated_at = $27
     from v where p.id = any($1::bigint[]) and p.id = v.pid returning p.id
 ), nxt as (
   insert into payments (merchant_uid, customer_uid, name, amount, cancelled_amount, currency, status, kind, scheduled_at,
                         subscription_id, period, attempt, checked_at, created_at, updated_at)
   select v.next, v.customer_uid, v.name, v.amount, 0, 'KRW', v.next_status, 'SCHEDULE', v.scheduled_at, v.sid, v.next_period, 1,
          v.next_checked_at, $27, $27
     from v returning id
 ), ev as (
   update webhook_events set attempts = attempts + 1, outcome = 'PAID', processed_at = $27 where id = any($24::bigint[])
 )
 update subscriptions s set status = 'ACTIVE', status_reason = null,
        current_period = coalesce(v.cur_period, s.current_period), current_period_start = coalesce(v.cur_start, s.current_period_start),
        current_period_end = coalesce(v.cur_end, s.current_period_end),
        next_payment_at = v.scheduled_at, next_merchant_uid = v.next, updated_at = $27
   from v
  where s.id = any($19::text[]) and s.id = v.sid and (select count(*) from pay) = $28 and (select count(*) from nxt) = $28
 returning s.id`;

/** Renewals settled in one transaction at most (the arrays of one statement). */
const MAX_BATCH = 32;

/** Thrown inside the transaction to roll it back and leave the renewal(s) to the general path. */
class TakeGeneralPath extends Error {}

/** A database error of a batch before any Iamport call: its renewals are tried one by one. */
class BeforeCalls extends Error {
  constructor(readonly original: unknown) {
    super("batch failed before any Iamport call");
  }
}

/** An error after the schedule calls (a failed commit): the renewals of `written` are in doubt. */
class AfterCalls extends Error {
  constructor(
    readonly original: unknown,
    readonly written: Set<Item>,
  ) {
    super("batch failed after its Iamport calls");
  }
}

interface RenewalInput {
  ctx: Ctx;
  ip: IamportPayment;
  fetchedAt: Date;
  eventId?: string;
}

/** A renewal waiting in a batch: its input and how to answer it. */
type Item = Pending<RenewalInput, VerifiedPayment | null>;

/** A renewal of a batch that got as far as its schedule call, and what the write needs of it. */
interface Renewal {
  item: Item;
  row: Row;
  payment: Payment;
  period: number;
  attempt: number;
  next: string;
  at: Date;
  current: { start: Date; end: Date } | null;
  scheduledAt: Date;
  registered: boolean;
}

/**
 * The renewal of the first of the month, in one transaction of three round
 * trips to the database (the BEGIN with the lock, the check for later
 * charges and a savepoint, sent together once the connection prepared them:
 * `q.all` in db/sql.ts; the write; the commit): the schedule
 * webhook of a subscription charge that Iamport reports paid, for an ACTIVE
 * or PAST_DUE subscription with nothing after this charge yet. Under the same
 * row locks and in the same order as the general path (payment, then
 * subscription), it applies the same verdict (`decide`, `supersedes`,
 * `applyVerification`), registers the next period's charge with Iamport, and
 * writes the payment, the next charge, the webhook event and the subscription
 * in one statement.
 *
 * Renewals that become ready in the same turn of the event loop (a burst of
 * webhooks) share that transaction: one lock statement, one check for later
 * charges, their schedule calls side by side, one write and one commit, so a
 * burst costs the database a few statements per batch instead of per renewal
 * (bench/README.md, changes 24 and 25). Nothing waits for a batch to fill: a
 * renewal alone is a batch of one.
 *
 * The next charge is SCHEDULED when Iamport confirmed it, and PENDING when the
 * outcome is unknown (timeout, Iamport down): committed with the payment, as
 * the general path's registerNext leaves it, for cancellation and
 * reconciliation to find. Everything else (a first payment, a decline, a
 * redelivery, a stale answer, a canceled subscription, an Iamport refusal, a
 * second renewal of the same payment or subscription in one batch) leaves that
 * renewal out of the write and returns null once the batch committed, and the
 * caller runs the general path (PaymentService.verifyFetched +
 * onPaymentVerified), which knows every case. A write that fails is undone to
 * a savepoint and each renewal written alone, so only one that fails again
 * leaves the batch; a failed commit answers the written renewals with the
 * error (their events are retried) and the others with null. The general
 * path stays the reference; this one only skips the unit of work (18
 * statements, ~6.5 ms of CPU a renewal: bench/README.md).
 */
export class FastRenewal {
  /** Renewals that became ready in the same turn of the event loop: one batch. */
  private readonly batcher = new TurnBatcher<RenewalInput, VerifiedPayment | null>(MAX_BATCH, (batch) => this.runBatch(batch));

  constructor(
    private readonly deps: BillingDeps,
    private readonly payments: PaymentService,
    private readonly observers: BillingObservers = {},
  ) {}

  run(ctx: Ctx, ip: IamportPayment, fetchedAt: Date, eventId?: string): Promise<VerifiedPayment | null> {
    if (ip.status !== "paid" || !ip.merchant_uid) return Promise.resolve(null);
    return this.batcher.push({ ctx, ip, fetchedAt, eventId });
  }

  private async runBatch(items: Item[]): Promise<void> {
    let results: (VerifiedPayment | null)[];
    try {
      this.observers.renewalBatch?.(items.length);
      results = await this.settle(items);
    } catch (err) {
      if (err instanceof BeforeCalls && items.length > 1) {
        // A lock wait the database broke (deadlock) or another error before Iamport was asked anything: one by one.
        await Promise.all(items.map((item) => this.runBatch([item])));
        return;
      }
      if (err instanceof AfterCalls) {
        // The commit (or a statement after the schedule calls) failed: the renewals that were written are in
        // doubt and answered as errors (their events are retried); the others were never written, general path.
        for (const item of items) if (err.written.has(item)) item.reject(err.original);
        else item.resolve(null);
        return;
      }
      const cause = err instanceof BeforeCalls ? err.original : err;
      for (const item of items) item.reject(cause);
      return;
    }
    items.forEach((item, i) => item.resolve(results[i]));
  }

  /** One transaction for the batch; the result of each item, null for those left to the general path. */
  private async settle(items: Item[]): Promise<(VerifiedPayment | null)[]> {
    const tz = this.deps.config.billingTimeZone;
    const first = items[0].input.ctx;
    let done: Renewal[] = [];
    let written = false;
    try {
      await transaction(first.db ?? first.em, async (q) => {
        const candidates: { item: Item; row: Row; payment: Payment; v: Verification; period: number; attempt: number }[] = [];
        try {
          // In one round trip with the BEGIN: the payments and their subscriptions, locked in that order (as the
          // general path and cancellations do); those with a later charge, read once the locks are held; and the
          // savepoint that a failed write is undone to.
          const uids = [...new Set(items.map((i) => i.input.ip.merchant_uid!))];
          const [rows, laterRows] = (await q.all([
            { text: LOCK_TEXT, values: [uids] },
            { text: LATER_TEXT, values: [uids] },
            { text: "savepoint renewal_write" },
          ])) as [Row[], { merchant_uid: string }[]];
          const later = new Set(laterRows.map((l) => l.merchant_uid));
          const byUid = new Map(rows.map((r) => [r.merchant_uid, r]));
          const taken = new Set<string>();
          for (const item of items) {
            const row = byUid.get(item.input.ip.merchant_uid!);
            // A second renewal of the same payment or subscription in the batch: the general path, after this commit.
            if (!row || taken.has(row.merchant_uid) || taken.has(row.s_id)) continue;
            if (row.status === PaymentStatus.PAID || later.has(row.merchant_uid)) continue;
            const payment = toPayment(row);
            if (changedSince(payment, item.input.fetchedAt) && wouldChange(payment, item.input.ip)) continue;
            if (!supersedes(payment, item.input.ip)) continue;
            const v = decide(payment, item.input.ip);
            if (v.status !== PaymentStatus.PAID) continue;
            if (row.s_cancel_at_period_end || row.s_current_period < 1) continue;
            if (row.s_status !== SubscriptionStatus.ACTIVE && row.s_status !== SubscriptionStatus.PAST_DUE) continue;
            taken.add(row.merchant_uid);
            taken.add(row.s_id);
            candidates.push({ item, row, payment, v, period: row.period ?? 1, attempt: row.attempt ?? 1 });
          }
          if (candidates.length === 0) return null;
        } catch (err) {
          throw new BeforeCalls(err);
        }

        const renewals: Renewal[] = [];
        for (const { item, row, payment, v, period, attempt } of candidates) {
          try {
            applyVerification(payment, item.input.ip, v);
            const anchor = pgTime(row.s_anchor_at)!;
            // Period n ends where period n+1 starts (both are boundaries from the anchor: billing-dates.ts).
            const paidPeriod = periodOf(anchor, row.s_interval, row.s_interval_count, period, tz);
            // Iamport refuses schedules in its past: a renewal confirmed late is charged a minute after it.
            const floor = Math.floor((payment.paidAt ?? new Date()).getTime() / 1000) * 1000 + 60_000;
            const at = paidPeriod.end.getTime() < floor ? new Date(floor) : paidPeriod.end;
            renewals.push({
              item,
              row,
              payment,
              period,
              attempt,
              next: renewalMerchantUid(row.s_id, period + 1, 1),
              at,
              current: period > row.s_current_period ? paidPeriod : null,
              scheduledAt: at,
              registered: false,
            });
          } catch (err) {
            // Nothing asked of Iamport for it yet: the general path, after this commit.
            item.input.ctx.log.warn({ subscriptionId: row.s_id, err: (err as Error).message }, "renewal left to the general path");
          }
        }
        // Side by side, each to its end: a refused one leaves the batch (nothing was registered for it); any other
        // failure is an unknown outcome, written PENDING like a timeout, for reconciliation to settle.
        const settled = await Promise.allSettled(renewals.map((r) => this.registerNext(r)));
        done = renewals.filter((r, i) => {
          const o = settled[i];
          if (o.status === "fulfilled") return true;
          if (o.reason instanceof TakeGeneralPath) return false;
          r.item.input.ctx.log.warn({ subscriptionId: r.row.s_id, merchantUid: r.next, err: (o.reason as Error)?.message }, "next charge registration failed; written PENDING");
          return true;
        });
        if (done.length === 0) return null;

        const now = new Date();
        const write = async (list: Renewal[]): Promise<boolean> => {
          try {
            const col = <T>(f: (r: Renewal) => T): T[] => list.map(f);
            const written = await q(WRITE_TEXT, [
              col((r) => r.payment.id),
              col((r) => r.payment.status),
              col((r) => r.payment.impUid),
              col((r) => r.payment.paidAmount),
              col((r) => r.payment.cancelledAmount),
              col((r) => r.payment.paidAt),
              col((r) => r.payment.failedAt),
              col((r) => r.payment.cancelledAt),
              col((r) => r.payment.failReason),
              col((r) => r.payment.receiptUrl),
              col((r) => r.payment.payMethod),
              col((r) => r.payment.currency),
              col((r) => JSON.stringify(r.payment.iamport)),
              col((r) => r.next),
              col((r) => r.row.s_customer_uid),
              col((r) => r.row.s_name),
              col((r) => r.row.s_amount),
              col((r) => r.scheduledAt),
              col((r) => r.row.s_id),
              col((r) => r.period + 1),
              col((r) => (r.current ? r.period : null)),
              col((r) => r.current?.start ?? null),
              col((r) => r.current?.end ?? null),
              col((r) => r.item.input.eventId ?? null),
              col((r) => (r.registered ? PaymentStatus.SCHEDULED : PaymentStatus.PENDING)),
              col((r) => (r.registered ? now : null)),
              now,
              list.length,
            ]);
            if (written.length === list.length) return true;
            first.log.warn({ renewals: list.length, written: written.length }, "renewal write matched fewer rows than renewals");
          } catch (err) {
            first.log.warn({ renewals: list.length, err: (err as Error).message }, "renewal write failed");
          }
          return false;
        };
        // A write that fails (or matches fewer rows) is undone to the savepoint, with the locks still held: then
        // each renewal is written on its own, and only one that fails again leaves the batch, its schedule
        // registered but no row (the general path finds and keeps it). A renewal alone leaves the batch at once.
        if (!(await write(done))) {
          if (done.length === 1) throw new TakeGeneralPath("write");
          await q("rollback to savepoint renewal_write");
          const kept: Renewal[] = [];
          for (const r of done) {
            await q("savepoint renewal_write_one");
            if (await write([r])) kept.push(r);
            else await q("rollback to savepoint renewal_write_one");
          }
          done = kept;
          if (done.length === 0) throw new TakeGeneralPath("write");
        }
        written = true;
        return done;
      }, { keyedPlans: true });
    } catch (err) {
      if (err instanceof TakeGeneralPath) return items.map(() => null);
      if (!written) throw err;
      throw new AfterCalls(err, new Set(done.map((r) => r.item)));
    }
    const byItem = new Map(done.map((r) => [r.item, r]));
    return items.map((item) => {
      const r = byItem.get(item);
      if (!r) return null;
      this.observers.subscriptionCharge?.(PaymentStatus.PAID, r.attempt);
      if (this.deps.logger.isLevelEnabled("info")) {
        item.input.ctx.log.info(
          { subscriptionId: r.row.s_id, period: r.period, attempt: r.attempt, merchantUid: r.payment.merchantUid, next: r.next },
          "renewal paid",
        );
      }
      return { payment: r.payment, outcome: "PAID", status: PaymentStatus.PAID, message: "Paid", applied: true, eventSettled: item.input.eventId !== undefined };
    });
  }

  /**
   * Registers the next charge with Iamport. Registered: SCHEDULED at Iamport's
   * time. Refused: nothing was registered, so the general path may take it
   * from the start (it moves a time Iamport finds past, or fails the attempt):
   * TakeGeneralPath. Unknown (timeout, Iamport down, an answer without this
   * schedule): the next charge is committed PENDING with the payment, locks
   * held until then, so a cancellation sees it and revokes it, and
   * reconciliation looks it up by merchant_uid and registers it if Iamport
   * never got it, as registerNext leaves it.
   */
  private async registerNext(r: Renewal): Promise<void> {
    const { ctx } = r.item.input;
    const entry = {
      merchant_uid: r.next,
      schedule_at: Math.floor(r.at.getTime() / 1000),
      amount: r.row.s_amount,
      name: r.row.s_name,
      currency: "KRW",
      notice_url: this.payments.scheduleNoticeUrl(),
    };
    const register = async (): Promise<void> => {
      const results = await this.deps.iamport.schedule(r.row.s_customer_uid, [entry], { requestId: ctx.requestId });
      const mine = results.find((x) => x.merchant_uid === r.next);
      if (mine?.schedule_status === "scheduled") {
        r.scheduledAt = new Date(mine.schedule_at * 1000);
        r.registered = true;
      }
    };
    try {
      await register();
    } catch (err) {
      if (err instanceof IamportRefusedError) throw new TakeGeneralPath("schedule refused");
      // Unknown outcome: asked by merchant_uid, and sent once more only if Iamport never got it
      // (Iamport refuses a second schedule with the same merchant_uid), as registerSchedules does.
      try {
        const found = await this.deps.iamport.getSchedule(r.next, { requestId: ctx.requestId });
        if (found.schedule_status === "scheduled") {
          r.scheduledAt = new Date(found.schedule_at * 1000);
          r.registered = true;
        }
      } catch (lookup) {
        if (lookup instanceof IamportNotFoundError) await register().catch(() => undefined);
      }
    }
    if (!r.registered) {
      ctx.log.warn({ subscriptionId: r.row.s_id, merchantUid: r.next }, "next charge not registered yet; reconciliation will retry");
    }
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
