import type { EntityManager } from "@mikro-orm/postgresql";
import { Payment, type Subscription } from "../db/entities";
import { PaymentKind, PaymentStatus, PriceChangeStatus, SubscriptionStatus } from "../db/entities/enums";
import { laterCharges, lockBillingRows } from "../db/repositories/billing-locks";
import { markChargesScheduled, type ChargeScheduled } from "../db/repositories/charge-registrations";
import { answeredChangesFor } from "../db/repositories/price-changes";
import { TurnBatcher, type Pending } from "../db/batch";
import { Plan, type PriceChange } from "../db/entities";
import { planTerms } from "./domain/plans";
import { claimStep } from "./domain/price-changes";
import { NotFoundError } from "../errors";
import { IamportNotFoundError, IamportRefusedError, type ProviderPayment, type ProviderSchedule } from "../provider/port";
import { outcomeUnknown, upstreamError, withEm, type BillingDeps, type Ctx } from "./context";
import { renewalMerchantUid } from "./domain/merchant-uids";
import { decideAnswer, planSubscriptionStep, wholeSeconds, type NextCharge, type SubscriptionPlan } from "./domain/settlement";
import { applyVerification, type Verification } from "./domain/verdict";
import type { ScheduleRegistrar } from "./payments/schedules";
import { paymentChangeEvents, paymentState, subscriptionChangeEvents, subscriptionState } from "./events";
import { recordEvents, type RecordEventInput } from "../events/record";

/** What a settlement leaves for after its commit: the facts to report, the claimed charges to register. */
interface Work {
  plans: SubscriptionPlan[];
  /**
   * PENDING subscription charges committed as claims, to be registered with
   * Iamport with no lock held: the row as the settlement committed it, so the
   * registrar need not read it again.
   */
  claims: Claim[];
}

/** A claimed charge: its id, and the row as its claim committed it when the claim is this process's own. */
interface Claim {
  id: string;
  row?: Payment;
}

/** Iamport's word on a registration, asked with no lock held. */
type Registration =
  | { kind: "scheduled"; at: Date }
  | { kind: "refused"; reason: string; iamportNow: Date }
  | { kind: "revoked" }
  | { kind: "ran"; impUid: string }
  | { kind: "unknown"; err: unknown };

/** Iamport's answer about an order, to settle under the order's lock. */
interface Answer {
  ctx: Ctx;
  orderUid: string;
  ip: ProviderPayment;
  askedAt: Date;
  /** The answer is taken as it is, even when the row changed after it was asked for. */
  lastRound: boolean;
}

/** What settling an answer came to: the order (null: no such order) and the work left for after the commit, or a new question to Iamport. */
type Settled = { kind: "settled"; result: VerifiedPayment | null; work: Work } | { kind: "ask-again" };

/** A charge whose status the transaction changed, with the rows its renewal step reads and writes. */
interface ChargeStep {
  ctx: Ctx;
  payment: Payment;
  previous: PaymentStatus;
  sub: Subscription | undefined;
  final: boolean;
  work: Work;
}

/** Answers settled in one transaction at most (a burst's webhooks beyond it wait for the next one). */
const ANSWERS_PER_BATCH = 32;

/** Observers (metrics) of what the billing core settled; told once per fact, after its commit. */
export interface BillingObservers {
  /** A subscription charge changed status (attempt 1 = renewal, 2.. = retry). */
  subscriptionCharge?(status: string, attempt: number): void;
  /** Events recorded together by one insert into the inbox (webhooks/inbox). */
  inboxBatch?(size: number): void;
  /** Answers settled together by one transaction (a batch that failed and was settled answer by answer is not counted). */
  settlementBatch?(size: number): void;
}

export interface VerifiedPayment extends Verification {
  payment: Payment;
  /**
   * False when Iamport's answer was not applied to the order: a payment of
   * another order presented as this one's, or a stale notice about an earlier
   * attempt. `status`/`outcome` are then the verdict about the presented
   * payment, and `payment` the order as it stays.
   */
  applied: boolean;
}

/**
 * The executor of the billing core: every payment outcome (a webhook, a
 * verifyPayment, a charge just made, a schedule Iamport refused, a
 * reconciliation step, a cancellation meeting a charge that ran) is applied
 * here, in one transaction under the locks of `lockBillingRows` (the
 * payment, then its subscription): the verdict on Iamport's answer and the
 * renewal step come from the pure decision core (domain/), this writes what
 * they plan and, after the commit, tells the observers and the log.
 */
export class Settlement {
  /**
   * The answers of concurrent callers (a burst of webhooks) settled together,
   * one transaction per batch: one lock statement, one write per table and
   * one commit for all of them instead of each. A few batches run at once
   * (a quarter of the PostgreSQL pool; one on the embedded database, whose
   * single connection serves one transaction at a time), so a burst's
   * answers queue and share the next transaction rather than each waiting
   * for a connection of its own.
   */
  private readonly answers: TurnBatcher<Answer, Settled>;

  /** Registrations Iamport confirmed in one turn, recorded by one statement (true: recorded; false: decided under the locks). */
  private readonly registered = new TurnBatcher<{ ctx: Ctx; charge: ChargeScheduled }, boolean>(ANSWERS_PER_BATCH, async (batch) => {
    // On the caller's own manager, never the root one: the statement must not join a transaction the first caller's async context may carry.
    const mark = (list: typeof batch) => markChargesScheduled({ em: list[0].input.ctx.em }, list.map((p) => p.input.charge), new Date());
    try {
      const marked = await mark(batch);
      for (const p of batch) p.resolve(marked.has(p.input.charge.paymentId));
    } catch (err) {
      if (batch.length === 1) throw err;
      // One registration the database could not record (a lock held too long) must not fail the others.
      for (const p of batch) await mark([p]).then((m) => p.resolve(m.has(p.input.charge.paymentId)), p.reject);
    }
  });

  constructor(
    private readonly deps: BillingDeps,
    private readonly schedules: ScheduleRegistrar,
    private readonly observers: BillingObservers = {},
  ) {
    const pool = deps.config.databasePoolMax;
    const running = deps.config.databaseUrl && Number.isFinite(pool) ? Math.max(1, Math.ceil(pool / 4)) : 1;
    this.answers = new TurnBatcher<Answer, Settled>(ANSWERS_PER_BATCH, (batch) => this.settleBatch(batch), running);
  }

  /**
   * Decides and applies `fetched` (Iamport's answer, asked for at `askedAt`)
   * under the order's row lock. When the row changed after that question was
   * asked (a refund, a concurrent delivery), the answer may be older than the
   * row: the transaction ends without writing, Iamport is asked again with
   * no lock held, and the new answer is decided under the lock again, so a
   * stale snapshot never overwrites newer facts. `claimedMerchantUid`: the
   * order the caller says this payment is for (checked against Iamport's),
   * instead of Iamport's.
   */
  async settleAnswer(
    ctx: Ctx,
    fetched: ProviderPayment,
    opts: { claimedMerchantUid?: string | null; askedAt?: Date; askAgain?: boolean } = {},
  ): Promise<VerifiedPayment> {
    const orderUid = opts.claimedMerchantUid ?? fetched.merchant_uid;
    let askedAt = opts.askedAt ?? new Date();
    let ip = fetched;
    let settled: Settled = { kind: "ask-again" };
    for (let round = 1; settled.kind === "ask-again"; round++) {
      if (round > 1) {
        askedAt = new Date();
        try {
          ip = await this.deps.provider.getPayment(ip.imp_uid, { requestId: ctx.requestId });
        } catch (err) {
          throw upstreamError(err, `Payment ${ip.imp_uid}`);
        }
      }
      // After two fresh answers that still met newer rows, the third is taken as it is: the row keeps moving.
      // A caller that holds row locks of its own (a cancellation, which fetched the answer just before taking
      // them) gets no second question: Iamport is never waited on under a lock.
      const answer: Answer = { ctx, orderUid, ip, askedAt, lastRound: round >= 3 || opts.askAgain === false };
      // Inside a caller's transaction the answer is settled in it, alone; otherwise with the answers that arrive with it.
      settled = ctx.em.isInTransaction() ? await this.settleAlone(ctx.em, answer) : await this.answers.push(answer);
    }
    const { result, work } = settled;
    await this.afterCommit(ctx, work);
    if (!result) throw new NotFoundError(`An order with merchant_uid ${orderUid} (call preparePayment first)`);
    if (result.outcome === "FORGERY") {
      ctx.log.warn(
        { merchantUid: result.payment.merchantUid, impUid: ip.imp_uid, iamportMerchantUid: ip.merchant_uid, reason: result.message },
        "forgery suspected",
      );
    }
    return result;
  }

  /**
   * Settles a batch of answers in one transaction. When the transaction
   * fails, nothing of it was written, and each answer is settled alone, so
   * that one answer the database refuses cannot keep the others from being
   * recorded.
   */
  private async settleBatch(batch: Pending<Answer, Settled>[]): Promise<void> {
    let outcomes: (Settled | "later")[];
    try {
      // A manager of its own: no caller's unflushed changes join the batch's transaction.
      outcomes = await this.settleTogether(batch[0].input.ctx.em.fork(), batch.map((p) => p.input));
    } catch (err) {
      if (batch.length === 1) throw err;
      batch[0].input.ctx.log.warn(
        { answers: batch.length, requestIds: batch.map((p) => p.input.ctx.requestId), err: (err as Error).message },
        "settling a batch of answers failed; settling each alone",
      );
      // One after another: the batch's slot bounds the transactions they take, as it bounded the batch's.
      for (const p of batch) await this.settleAlone(p.input.ctx.em, p.input).then(p.resolve, p.reject);
      return;
    }
    this.observers.settlementBatch?.(outcomes.filter((o) => o !== "later" && o.kind === "settled").length);
    outcomes.forEach((o, i) => {
      const p = batch[i];
      // Answered by the next batch, after this one's commit: first in line, so a stream of newer answers cannot keep putting it off.
      p.resolve(o === "later" ? this.answers.push(p.input, { first: true }) : o);
    });
  }

  /** Settles one answer in a transaction of its own (nested in the caller's, when `em` is in one). */
  private async settleAlone(em: EntityManager, answer: Answer): Promise<Settled> {
    const [settled] = await this.settleTogether(em, [answer]);
    // No other answer of the batch can have taken its rows.
    return settled === "later" ? { kind: "ask-again" } : settled;
  }

  /**
   * Decides and applies each answer under its order's row lock, in one
   * transaction of `em`: the rows of all of them locked by one statement
   * (lockBillingRows' order), the renewal steps read and written together,
   * their events recorded by one insert. An answer about an order (or a
   * subscription) that another answer of the batch already moved is decided
   * against the row as moved; when it would move it again, it comes out
   * "later", to be settled after this commit, since the renewal steps read
   * the rows once for the whole batch.
   */
  private async settleTogether(em0: EntityManager, answers: Answer[]): Promise<(Settled | "later")[]> {
    return em0.transactional(async (em) => {
      const orderUids = [...new Set(answers.map((a) => a.orderUid))];
      const { payments, subscriptions } = await lockBillingRows(em, { merchantUid: orderUids.length === 1 ? orderUids[0] : { $in: orderUids } });
      const byUid = new Map(payments.map((p) => [p.merchantUid, p]));
      const subById = new Map(subscriptions.map((s) => [s.id, s]));
      // The orders and subscriptions an answer of the batch has moved.
      const moved = new Set<string>();
      const steps: (ChargeStep & { before: Before })[] = [];
      const outcomes = answers.map((a): Settled | "later" => {
        const work: Work = { plans: [], claims: [] };
        const payment = byUid.get(a.orderUid);
        if (!payment) return { kind: "settled", result: null, work };
        const sub = payment.subscription ? subById.get(payment.subscription.id) : undefined;
        const keys = [`order:${payment.id}`, ...(sub ? [`subscription:${sub.id}`] : [])];
        const busy = keys.some((k) => moved.has(k));
        // Decided against the rows as the batch has changed them so far (under their locks, as they will commit).
        const decision = decideAnswer(payment, a.ip, a.askedAt, a.lastRound);
        if (decision.kind === "ask-again") return busy ? "later" : { kind: "ask-again" };
        // Another order's payment presented as this one's: the claim is refused, but neither order changes:
        // flagging the claimed order would let anyone who knows a merchant_uid block its real payment.
        if (decision.kind === "foreign") return { kind: "settled", result: { payment, ...decision.verdict, applied: false }, work };
        // A late or repeated notice about another attempt of this order never undoes what the order has.
        if (decision.kind === "kept") return { kind: "settled", result: { payment, ...decision.verdict, message: decision.message, applied: false }, work };
        const v = decision.verdict;
        // A second status change of a row the batch already moved would need its renewal step planned from
        // what the first one wrote: it waits for the next batch. A repeat of the same answer does not.
        if (busy && v.status !== payment.status) return "later";
        keys.forEach((k) => moved.add(k));
        // The subscription's events are those of the first answer that moved it: its renewal step runs once,
        // after all answers are decided, so a repeat would report the same change again.
        const before = { payment: paymentState(payment), sub: sub && !busy ? subscriptionState(sub) : null };
        const previous = payment.status;
        applyVerification(payment, a.ip, v);
        steps.push({ ctx: withEm(a.ctx, em), payment, previous, sub, final: v.final === true, work, before });
        return { kind: "settled", result: { payment, ...v, applied: true }, work };
      });
      if (steps.length > 0) {
        await em.flush();
        await this.renewalSteps(em, steps);
        await recordChanges(em, steps);
      }
      return outcomes;
    });
  }

  /**
   * Records a PENDING charge that was never made (Iamport refused it, or the
   * subscription was canceled before it was sent) as FAILED, with the
   * renewal step, under the locks.
   */
  async settleUnmade(ctx: Ctx, paymentId: string, reason: string): Promise<void> {
    const work: Work = { plans: [], claims: [] };
    await ctx.em.transactional(async (em) => {
      const {
        payments: [locked],
        subscriptions: [sub],
      } = await lockBillingRows(em, { id: paymentId });
      if (!locked || locked.status !== PaymentStatus.PENDING) return;
      const before = { payment: paymentState(locked), sub: sub ? subscriptionState(sub) : null };
      const now = new Date();
      locked.status = PaymentStatus.FAILED;
      locked.failReason = reason;
      locked.failedAt = now;
      locked.checkedAt = now;
      await em.flush();
      const step = { ctx: withEm(ctx, em), payment: locked, previous: PaymentStatus.PENDING, sub, final: false, work, before };
      await this.renewalSteps(em, [step]);
      await recordChanges(em, [step]);
    });
    await this.afterCommit(ctx, work);
  }

  /**
   * Reconciliation of a subscription's charge whose registration outcome is
   * unknown: looked up at Iamport by merchant_uid and registered when Iamport
   * never got it, with no lock held while Iamport answers (registerClaim).
   * Returns the imp_uid when the charge already ran, for the caller to settle.
   */
  async registerUnregistered(ctx: Ctx, paymentId: string): Promise<string | null> {
    const work: Work = { plans: [], claims: [] };
    const ran = await this.registerClaim(ctx, { id: paymentId }, work, true);
    await this.afterCommit(ctx, work);
    const row = await ctx.em.findOne(Payment, { id: paymentId }, { refresh: true });
    if (!ran && row?.status === PaymentStatus.PENDING) throw new Error(`schedule ${row.merchantUid} is still not registered with ${this.deps.provider.label}`);
    return ran;
  }

  /**
   * The renewal steps of subscription charges whose status changed, written
   * under the locks the caller holds: each one the decision core's plan.
   * The rows they read (the charges after each one, the rows of the charges
   * that may come next, the answered price changes of the claims) are read by
   * one statement each, and what they write by one flush, however many steps.
   */
  private async renewalSteps(em: EntityManager, steps: ChargeStep[]): Promise<void> {
    const due = steps.flatMap((s) => (s.payment.subscription && s.sub && s.payment.status !== s.previous ? [{ ...s, sub: s.sub }] : []));
    if (due.length === 0) return;
    const at = (s: (typeof due)[number]) => ({ period: s.payment.period ?? 1, attempt: s.payment.attempt ?? 1 });
    // The charges that may come next (the next period's first, or this period's next attempt) are read with the later ones.
    const charges = await laterCharges(
      em,
      due.map((s) => {
        const { period, attempt } = at(s);
        return { subscriptionId: s.sub.id, period, attempt, merchantUids: [renewalMerchantUid(s.sub.id, period + 1, 1), renewalMerchantUid(s.sub.id, period, attempt + 1)] };
      }),
    );
    const now = new Date();
    const planned = due.map((s) => {
      const { period, attempt } = at(s);
      const p = s.payment;
      const plan = planSubscriptionStep(
        { merchantUid: p.merchantUid, status: p.status, previous: s.previous, kind: p.kind, period, attempt, paidAt: p.paidAt, failedAt: p.failedAt, failReason: p.failReason, final: s.final },
        s.sub,
        charges.get(s.sub.id)!.later,
        { timeZone: this.deps.config.billingTimeZone, retryDelaysSeconds: this.deps.config.retryScheduleSeconds },
        now,
      );
      s.work.plans.push(plan);
      if (plan.change) Object.assign(s.sub, plan.change);
      return { ...s, next: plan.next, existing: plan.next ? charges.get(s.sub.id)!.byMerchantUid.get(plan.next.merchantUid) : undefined };
    });
    // A price change answered for a renewal to be claimed, or an earlier one, decides what it charges, or that it is not made.
    const changes = await answeredChangesFor(
      em,
      planned.flatMap((s) => (s.next && !s.existing ? [{ subscriptionId: s.sub.id, period: s.next.period }] : [])),
    );
    // An accepted change that carries a plan moves the subscription to the plan's terms with the claim.
    const codes = [...new Set([...changes.values()].flatMap((c) => (c.planCode && c.status === PriceChangeStatus.ACCEPTED ? [c.planCode] : [])))];
    const plans = new Map(codes.length ? (await em.find(Plan, { code: { $in: codes } })).map((p) => [p.code, p]) : []);
    const claims = planned.map((s) => {
      const change = changes.get(s.sub.id);
      return s.next ? { s, row: this.claimCharge(s.ctx, s.sub, s.next, s.existing, change, change?.planCode ? plans.get(change.planCode) : undefined) } : null;
    });
    // One flush writes the new charges and the subscriptions (a new charge's id is known after it).
    await em.flush();
    for (const c of claims) {
      if (!c?.row) continue;
      const ended = c.s.sub.status === SubscriptionStatus.CANCELED || c.s.sub.status === SubscriptionStatus.UNPAID;
      c.s.work.claims.push({ id: c.row.id, row: ended ? undefined : c.row });
    }
  }

  /**
   * Claims a planned charge: its row is created PENDING (unless it exists: a
   * redelivered outcome) in the settlement's transaction, and registered
   * with Iamport after the commit (afterCommit), so no lock or connection
   * is held while Iamport answers. A registration that fails leaves the row
   * PENDING for reconciliation; a cancellation that meets the claim revokes it.
   * `existing`: the row that holds the charge's merchant_uid, if any;
   * `change`: the answered price change the new charge must follow, if any,
   * and `plan` the plan an accepted one moves the subscription to.
   * Returns the row to register (a PENDING one), persisted for the caller's flush.
   */
  private claimCharge(ctx: Ctx, sub: Subscription, next: NextCharge, existing: Payment | undefined, change: PriceChange | undefined, plan: Plan | undefined): Payment | null {
    let row = existing;
    if (!row) {
      if (change) {
        const step = claimStep(change);
        change.appliedAt = new Date();
        if (step.kind === "end") {
          sub.cancelAtPeriodEnd = true;
          sub.cancelReason = step.reason;
          sub.statusReason = `cancels at the end of the current period: ${step.reason}`;
          sub.nextPaymentAt = null;
          sub.nextMerchantUid = null;
          return null;
        }
        if (plan) Object.assign(sub, planTerms(plan));
        else sub.amount = step.amount;
        // Plans are archived, never deleted: a change naming a plan that is not there keeps the consented amount, and says so.
        if (change.planCode && !plan) ctx.log.error({ subscriptionId: sub.id, planCode: change.planCode }, "the accepted change's plan is missing; only its amount applies");
      }
      row = newSubscriptionCharge(ctx.em, sub, next.period, next.attempt, PaymentKind.SCHEDULE, next.at);
      ctx.em.persist(row);
    } else if (row.subscription?.id !== sub.id || row.period !== next.period || row.attempt !== next.attempt) {
      // The reserved prefix keeps callers' orders off these merchant_uids; a row that is not this charge is never adopted.
      ctx.log.error({ subscriptionId: sub.id, merchantUid: next.merchantUid }, "the next charge's merchant_uid belongs to another order; nothing scheduled");
      return null;
    }
    sub.nextPaymentAt = row.scheduledAt ?? next.at;
    sub.nextMerchantUid = next.merchantUid;
    return row.status === PaymentStatus.PENDING ? row : null;
  }

  /** After a settlement's commit: its claimed charges registered with Iamport, then its facts reported. */
  private async afterCommit(ctx: Ctx, work: Work): Promise<void> {
    // A claim's registration may itself settle a charge (refused: FAILED), whose facts join the list.
    for (let i = 0; i < work.claims.length; i++) {
      try {
        await this.registerClaim(ctx, work.claims[i], work, false);
      } catch (err) {
        ctx.log.warn({ paymentId: work.claims[i].id, err: (err as Error).message }, "next charge not registered yet; reconciliation will retry");
      }
    }
    this.report(ctx, work.plans);
  }

  /**
   * Registers a claimed (PENDING) charge of a subscription with Iamport: the
   * call with no lock held, then Iamport's answer recorded under the locks,
   * as things stand then. A claim the subscription can no longer use (it was
   * canceled, or the cancellation revoked the claim, while Iamport answered)
   * is unscheduled at Iamport again. A time Iamport finds past is moved to a
   * minute from Iamport's now, once (the row was never registered, so moving
   * it cannot double it). A refusal for a reason of Iamport's own (the billing
   * key was deleted at Iamport...) can never succeed: the charge is settled
   * FAILED with the reason, through the renewal step, and since Iamport would
   * refuse its retries too, dunning ends there. `lookUpFirst`: the claim may
   * have been registered already (reconciliation); returns the imp_uid of a
   * charge that already ran.
   */
  private async registerClaim(ctx: Ctx, claim: Claim, work: Work, lookUpFirst: boolean): Promise<string | null> {
    const paymentId = claim.id;
    const chargeable = (s: Subscription | undefined) =>
      !!s && s.status !== SubscriptionStatus.CANCELED && s.status !== SubscriptionStatus.UNPAID && s.status !== SubscriptionStatus.PAUSED;
    for (let round = 0; round < 2; round++) {
      // The row as its claim committed it (PENDING, its subscription chargeable then) serves the first round:
      // whatever changed since is met by the conditional update, or under the locks.
      const fresh = round === 0 && claim.row;
      const row = fresh ? claim.row! : await ctx.em.findOne(Payment, { id: paymentId }, { refresh: true, populate: ["subscription"] });
      if (!row || row.status !== PaymentStatus.PENDING || !row.subscription || !row.scheduledAt) return null;
      const answer: Registration =
        !fresh && !chargeable(row.subscription) ? { kind: "revoked" } : await this.askToRegister(ctx, row, lookUpFirst && round === 0);
      if (answer.kind === "unknown") {
        ctx.log.warn({ merchantUid: row.merchantUid, err: (answer.err as Error)?.message }, "next charge not registered yet; reconciliation will retry");
        return null;
      }
      if (answer.kind === "ran") return answer.impUid;
      if (answer.kind === "scheduled" && (await this.markScheduled(ctx, { paymentId, at: answer.at }))) return null;
      const then = await ctx.em.transactional(async (em): Promise<"done" | "unschedule" | "again"> => {
        const {
          payments: [r],
          subscriptions: [sub],
        } = await lockBillingRows(em, { id: paymentId });
        if (!r) return "done";
        const now = new Date();
        if (answer.kind === "revoked") {
          if (r.status === PaymentStatus.PENDING) r.status = PaymentStatus.REVOKED;
          r.checkedAt = now;
          return "done";
        }
        if (answer.kind === "scheduled") {
          // Still PENDING and chargeable under the locks: the subscription became chargeable again after the update above.
          if (r.status === PaymentStatus.PENDING && chargeable(sub)) {
            await markChargesScheduled(withEm(ctx, em), [{ paymentId, at: answer.at }], now);
            return "done";
          }
          r.checkedAt = now;
          // Canceled, or revoked by a cancellation, while Iamport registered it: it must not run.
          if (r.status === PaymentStatus.PENDING || r.status === PaymentStatus.REVOKED) {
            r.status = PaymentStatus.REVOKED;
            return "unschedule";
          }
          return "done";
        }
        // Refused.
        if (r.status !== PaymentStatus.PENDING) return "done";
        const before = { payment: paymentState(r), sub: subscriptionState(sub) };
        if (!chargeable(sub)) {
          r.status = PaymentStatus.REVOKED;
          return "done";
        }
        if (round === 0 && r.scheduledAt && r.scheduledAt.getTime() <= answer.iamportNow.getTime() + 5_000) {
          r.scheduledAt = new Date(wholeSeconds(answer.iamportNow).getTime() + 60_000);
          if (sub.nextMerchantUid === r.merchantUid) sub.nextPaymentAt = r.scheduledAt;
          ctx.log.info({ subscriptionId: sub.id, merchantUid: r.merchantUid, at: r.scheduledAt }, "charge time already past at Iamport; moved");
          return "again";
        }
        r.status = PaymentStatus.FAILED;
        r.failReason = answer.reason;
        r.failedAt = answer.iamportNow;
        r.checkedAt = now;
        ctx.log.warn({ subscriptionId: sub.id, merchantUid: r.merchantUid, reason: answer.reason }, "charge refused by Iamport's scheduler; counted as failed");
        await em.flush();
        const step = { ctx: withEm(ctx, em), payment: r, previous: PaymentStatus.PENDING, sub, final: true, work, before };
        await this.renewalSteps(em, [step]);
        await recordChanges(em, [step]);
        return "done";
      });
      if (then === "unschedule") {
        try {
          await this.deps.provider.revoke(row.customerUid!, [row.merchantUid], { requestId: ctx.requestId });
        } catch (err) {
          // Left to reconciliation's sweep of ended subscriptions' schedules.
          ctx.log.warn({ merchantUid: row.merchantUid, err: (err as Error).message }, "a claim registered after its cancellation could not be revoked yet");
        }
        ctx.log.info({ merchantUid: row.merchantUid }, "charge registered after its subscription's cancellation; revoked");
      }
      if (then !== "again") return null;
    }
    return null;
  }

  /** Records a registration Iamport confirmed: with the others of the turn, unless the caller is in a transaction of its own. */
  private async markScheduled(ctx: Ctx, charge: ChargeScheduled): Promise<boolean> {
    if (ctx.em.isInTransaction()) return (await markChargesScheduled(ctx, [charge], new Date())).has(charge.paymentId);
    return this.registered.push({ ctx, charge });
  }

  /** Asks Iamport to register a claimed charge (no lock held); a lost or refused answer is looked up by merchant_uid. */
  private async askToRegister(ctx: Ctx, row: Payment, lookUpFirst: boolean): Promise<Registration> {
    const opts = { requestId: ctx.requestId };
    const lookUp = async (): Promise<Registration | null> => {
      let s: ProviderSchedule;
      try {
        s = await this.deps.provider.getSchedule(row.merchantUid, opts);
      } catch (err) {
        if (err instanceof IamportNotFoundError) return null;
        return { kind: "unknown", err };
      }
      if (s.schedule_status === "scheduled") return { kind: "scheduled", at: new Date(s.schedule_at * 1000) };
      // Revoked at another amount: the registration a price change replaced (PriceChangeService), not this claim.
      if (s.schedule_status === "revoked") return s.amount === row.amount ? { kind: "revoked" } : null;
      if (s.imp_uid) return { kind: "ran", impUid: s.imp_uid };
      return { kind: "unknown", err: new Error(`schedule ${row.merchantUid} is ${s.schedule_status} without a payment yet`) };
    };
    const send = async (): Promise<ProviderSchedule | undefined> =>
      (await this.deps.provider.schedule(row.customerUid!, [this.schedules.entry(row)], opts)).find((x) => x.merchant_uid === row.merchantUid);
    if (lookUpFirst) {
      const found = await lookUp();
      if (found) return found;
    }
    try {
      const mine = await send();
      if (mine?.schedule_status === "scheduled") return { kind: "scheduled", at: new Date(mine.schedule_at * 1000) };
      return (await lookUp()) ?? { kind: "unknown", err: new Error(`${this.deps.provider.label}'s answer did not list the schedule`) };
    } catch (err) {
      if (!(err instanceof IamportRefusedError) && !outcomeUnknown(err)) return { kind: "unknown", err };
      // A redelivery may find its merchant_uid already registered: that is success, not refusal.
      const found = await lookUp();
      if (found) return found;
      if (err instanceof IamportRefusedError) {
        return { kind: "refused", reason: `${err.provider} refused the schedule: ${err.iamportMessage}`, iamportNow: await iamportNow(this.deps) };
      }
      // Never registered: one more attempt with the same merchant_uid is safe (Iamport refuses duplicates).
      try {
        const mine = await send();
        if (mine?.schedule_status === "scheduled") return { kind: "scheduled", at: new Date(mine.schedule_at * 1000) };
      } catch (again) {
        return { kind: "unknown", err: again };
      }
      return { kind: "unknown", err };
    }
  }

  /** The one place the facts of settled charges reach the log and the metrics (after their commit). */
  private report(ctx: Ctx, plans: SubscriptionPlan[]): void {
    for (const plan of plans) {
      if (plan.log) ctx.log[plan.log.level](plan.log.fields, plan.log.message);
      if (plan.settled) this.observers.subscriptionCharge?.(plan.settled.status, plan.settled.attempt);
    }
  }
}

/** The states of a payment and its subscription before a settlement changed them. */
interface Before {
  payment: ReturnType<typeof paymentState>;
  sub: ReturnType<typeof subscriptionState> | null;
}

/**
 * Records the events of settled changes in their transaction (the outbox),
 * in one statement: for each change the payment's first, then its
 * subscription's, so their ids follow the order in which they happened.
 */
async function recordChanges(em: EntityManager, changes: readonly { payment: Payment; sub: Subscription | undefined; before: Before }[]): Promise<void> {
  const events: RecordEventInput[] = [];
  for (const { payment, sub, before } of changes) {
    events.push(...paymentChangeEvents(payment, before.payment), ...(sub && before.sub ? subscriptionChangeEvents(sub, before.sub) : []));
  }
  await recordEvents(em, events);
}

/** A new PENDING charge row of a subscription (period, attempt), under its deterministic merchant_uid. */
export function newSubscriptionCharge(em: EntityManager, sub: Subscription, period: number, attempt: number, kind: PaymentKind, at: Date | null): Payment {
  return em.create(Payment, {
    merchantUid: renewalMerchantUid(sub.id, period, attempt),
    customerUid: sub.customerUid,
    name: sub.name,
    amount: sub.amount,
    taxFreeAmount: sub.taxFreeAmount,
    vatAmount: sub.vatAmount ?? null,
    kind,
    status: PaymentStatus.PENDING,
    scheduledAt: at,
    subscription: sub,
    period,
    attempt,
  });
}

/** Iamport's clock (from getToken's `now`); this server's when Iamport cannot be asked. */
export async function iamportNow(deps: BillingDeps): Promise<Date> {
  try {
    return new Date((await deps.provider.serverNow()) * 1000);
  } catch {
    return new Date();
  }
}
