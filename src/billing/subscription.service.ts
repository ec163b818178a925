import { UniqueConstraintViolationException, type FilterQuery } from "@mikro-orm/core";
import { withTransaction } from "../events/present";
import { recordSubscriptionChange, subscriptionState } from "./events";
import { Payment, Subscription } from "../db/entities";
import { BillingInterval, LIVE_SUBSCRIPTION_STATUSES, PaymentKind, PaymentStatus, SubscriptionStatus } from "../db/entities/enums";
import { BadUserInputError, ConflictError, NotFoundError, OutcomeUnknownError, toAppError } from "../errors";
import { IamportNotFoundError, IamportRefusedError, type ProviderPayment, type ProviderSchedule } from "../provider/port";
import { lockBillingRows } from "../db/repositories/billing-locks";
import { OPEN_CHARGE_STATUSES } from "./domain/transitions";
import { wholeSeconds } from "./domain/settlement";
import { requireActiveCard } from "./card.service";
import { afterIamport, BillingDeps, Ctx, derivedId, withEm, outcomeUnknown, randomId, upstreamError } from "./context";
import { decodeCursor, encodeCursor, Page } from "./pagination";
import { againRequest, checkFirst } from "./payment.service";
import type { ScheduleRegistrar } from "./payments/schedules";
import { iamportNow, newSubscriptionCharge, type Settlement } from "./settlement";
import type { PlanService } from "./plan.service";
import { checkAmount, checkFuture, checkInterval, checkIntervalCount, checkText, checkUid, optionalText } from "./validation";

export interface StartSubscriptionInput {
  customerUid: string;
  /** Name, amount, interval and count come from this plan when it is given. */
  planCode?: string | null;
  name?: string | null;
  amount?: number | null;
  interval?: BillingInterval | null;
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

/** What a new subscription charges, from its plan or the explicit fields. */
interface Terms {
  planCode: string | null;
  name: string;
  amount: number;
  interval: BillingInterval;
  intervalCount: number;
  trialDays: number;
}

/** What Iamport says of a charge a revocation was asked for (SubscriptionService.revokeAtIamport). */
type AtIamport =
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
    const terms = await this.terms(ctx, input);
    const { name, amount, interval, intervalCount } = terms;
    if (terms.trialDays > 0) throw new BadUserInputError("planCode", "names a plan with a free trial, which this server cannot start yet");
    const startAt = input.startAt ? checkFuture("startAt", input.startAt) : null;
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
      interval,
      intervalCount,
      planCode: terms.planCode,
      // Whole seconds: Iamport schedules are in UNIX seconds, and period boundaries must match them.
      // Without startAt this is provisional: the anchor becomes the moment Iamport takes the first payment.
      anchorAt: wholeSeconds(startAt ?? new Date()),
      status: startAt ? SubscriptionStatus.ACTIVE : SubscriptionStatus.INCOMPLETE,
      statusReason: startAt ? "first payment scheduled" : "first payment in progress",
      allowDuplicate,
      requestRef,
    });
    const first = newSubscriptionCharge(ctx.em, sub, 1, 1, startAt ? PaymentKind.SCHEDULE : PaymentKind.AGAIN, startAt ? wholeSeconds(startAt) : null);
    sub.nextPaymentAt = first.scheduledAt ?? null;
    sub.nextMerchantUid = first.merchantUid;
    try {
      // A subscription started with startAt is ACTIVE from this insert: its subscription.started
      // commits with the row (the outbox), so no crash can leave one without the other.
      await withTransaction(ctx.em, async () => {
        await ctx.em.persistAndFlush([sub, first]);
        if (startAt) await recordSubscriptionChange(ctx.em, sub, null);
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
    const exists = await ctx.em.findOne(Subscription, { id });
    if (!exists) throw new NotFoundError(`Subscription ${input.id}`);
    if (exists.status === SubscriptionStatus.CANCELED) return exists;
    // Whether the paid period is over is a question for Iamport's clock, which runs the schedules.
    const now = await iamportNow(this.deps);
    // Iamport first, with no lock held: the open charges revoked, and what became of those it did not revoke.
    const asked = await this.revokeAtIamport(ctx, exists.customerUid, await this.openCharges(ctx, id));
    const stragglers = await ctx.em.transactional(async (em): Promise<Payment[]> => {
      const tx: Ctx = withEm(ctx, em);
      const {
        payments: open,
        subscriptions: [sub],
      } = await lockBillingRows(em, { subscription: id, status: { $in: OPEN_CHARGE_STATUSES }, kind: PaymentKind.SCHEDULE }, [id]);
      if (sub.status === SubscriptionStatus.CANCELED) return [];
      const before = subscriptionState(sub);
      const wasAtPeriodEnd = sub.cancelAtPeriodEnd;
      const { ran, late } = this.recordRevocations(open, asked);
      sub.cancelReason = reason;
      sub.nextPaymentAt = null;
      sub.nextMerchantUid = null;
      if (ran.length > 0) {
        sub.cancelAtPeriodEnd = true;
        sub.statusReason = "cancels at the end of the period: a renewal charge Iamport may have made is being settled";
        await em.flush();
        await recordSubscriptionChange(em, sub, before);
        // Settling records the events of what the charge changed.
        const unsettled = await this.settleRan(tx, ran, asked);
        // Declined: the renewal step ended it (the settling changed the row). Unknown: its webhook or reconciliation finishes it.
        if ((sub.status as SubscriptionStatus) === SubscriptionStatus.CANCELED || unsettled) return late;
      }
      const mark = subscriptionState(sub);
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
      await recordSubscriptionChange(em, sub, mark);
      return late;
    });
    // Charges registered while Iamport was being asked (a renewal's claim): revoked now, again with no lock held.
    if (stragglers.length > 0) await this.revokeStragglers(ctx, id, stragglers);
    await ctx.em.refresh(exists);
    return exists;
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
  private async revokeAtIamport(ctx: Ctx, customerUid: string, rows: Payment[]): Promise<Map<string, AtIamport>> {
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
        subscription: { status: { $in: [SubscriptionStatus.CANCELED, SubscriptionStatus.UNPAID] } },
      },
      { limit, orderBy: { id: "asc" } },
    );
    const subs = [...new Set(rows.map((r) => r.subscription!.id))];
    const ended = (st: SubscriptionStatus) => st === SubscriptionStatus.CANCELED || st === SubscriptionStatus.UNPAID;
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
        sub.statusReason = "canceled at the end of the period";
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
      return { planCode: plan.code, name: plan.name, amount: plan.amount, interval: plan.interval, intervalCount: plan.intervalCount, trialDays: plan.trialDays };
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
  private async scheduleFirst(ctx: Ctx, sub: Subscription, first: Payment): Promise<void> {
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
        throw new BadUserInputError("startAt", `could not be scheduled: ${err.message}`);
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
