import { QueryOrder } from "@mikro-orm/core";
import { Payment, WebhookEvent } from "../db/entities";
import { PaymentKind, PaymentStatus } from "../db/entities/enums";
import { purgeExpiredIdempotencyKeys } from "../db/repositories/idempotency-keys";
import { BadUserInputError, toAppError } from "../errors";
import { IamportNotFoundError } from "../provider/port";
import type { BillingDeps, Ctx } from "./context";
import type { Services } from "./services";

export interface ReconcileReport {
  events: number;
  pendingCharges: number;
  unregisteredSchedules: number;
  dueSchedules: number;
  expired: number;
  /** Paused subscriptions resumed at their resumesAt. */
  resumed: number;
  /** Refunds claimed by cancellations whose outcome was not confirmed, finished. */
  refundsFinished: number;
  /** Free trials that ended without the customer's consent (CANCELED). */
  trialsEnded: number;
  /** Notices sent (trial ending, renewal upcoming, price change), each once. */
  notices: number;
  /** Price changes left unanswered until answers closed (EXPIRED). */
  priceChangesExpired: number;
  /** Accepted plan changes applied to a renewal claimed after the consent. */
  planChangesApplied: number;
  /** Subscriptions that had ended but still had an open schedule at Iamport (revoked now). */
  orphansRevoked: number;
  /** Browser checkouts and virtual accounts re-queried (their webhook may have been lost). */
  checkouts: number;
  /** Idempotency keys past their 24 hours, deleted. */
  idempotencyKeysPurged: number;
  errors: number;
}

/**
 * After this long with no record at Iamport, a non-subscription charge is
 * declared never made (FAILED). Until then it stays PENDING: a request still
 * running (several Iamport calls of up to IAMPORT_TIMEOUT_MS each) or a client
 * repeating chargeAgain under the same merchantUid may still charge it, and a
 * FAILED row must never get a payment behind it. After FAILED, a repeat
 * answers the FAILED payment and charges nothing.
 */
const ABANDON_AFTER_MS = 10 * 60_000;
const BATCH = 200;
/** How long a browser checkout or virtual account is watched for a lost webhook, and how often it is asked about. */
const CHECKOUT_WATCH_MS = 7 * 86400_000;
const CHECKOUT_RECHECK_MS = 10 * 60_000;

/**
 * Reconciliation: the answer to lost webhooks and unknown outcomes. Each step
 * asks Iamport and applies exactly what the webhook would have, through the
 * same verification and renewal code, so running it twice changes nothing.
 */
export class ReconcileService {
  /**
   * How long a PENDING charge or schedule may stay unanswered before it is
   * settled, so a call still in flight is never touched: a charge makes up to
   * three Iamport calls (token, again, the look-up after a timeout).
   */
  private readonly pendingGraceMs: number;
  /** How old an unprocessed webhook event must be before it is picked up (one in flight is left alone). */
  private readonly eventGraceSeconds: number;

  constructor(
    private readonly deps: BillingDeps,
    private readonly services: Services,
  ) {
    const timeoutMs = deps.config.iamport.timeoutMs;
    this.pendingGraceMs = 3 * timeoutMs + 5_000;
    this.eventGraceSeconds = Math.ceil((2 * timeoutMs + 2_000) / 1000);
  }

  async runOnce(root: Ctx): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      events: 0,
      pendingCharges: 0,
      unregisteredSchedules: 0,
      dueSchedules: 0,
      expired: 0,
      refundsFinished: 0,
      resumed: 0,
      trialsEnded: 0,
      notices: 0,
      priceChangesExpired: 0,
      planChangesApplied: 0,
      orphansRevoked: 0,
      checkouts: 0,
      idempotencyKeysPurged: 0,
      errors: 0,
    };
    const iamportNow = new Date((await this.deps.provider.serverNow()) * 1000);
    const localNow = Date.now();
    const each = async (what: string, fn: (ctx: Ctx) => Promise<void>) => {
      const ctx: Ctx = { ...root, em: root.em.fork() };
      try {
        await fn(ctx);
      } catch (err) {
        report.errors += 1;
        const e = toAppError(err);
        // The error itself (serialized without request bodies): for an internal one, e.message is only "Internal server error".
        root.log.warn({ what, code: e.code, err }, "reconciliation step failed; will retry next run");
      }
    };

    // 1. Webhooks recorded but not processed (the server died mid-way, or Iamport was down).
    const events = await this.services.webhooks.pending({ ...root, em: root.em.fork() }, this.eventGraceSeconds, BATCH);
    for (const ev of events) {
      await each(`webhook event ${ev.id}`, async (ctx) => {
        const fresh = await ctx.em.findOneOrFail(WebhookEvent, { id: ev.id });
        const r = await this.services.webhooks.process(ctx, fresh);
        if (r.kind !== "retry") report.events += 1;
      });
    }

    const em = root.em.fork();
    // 2. Charges left PENDING by a timeout or crash: settled by merchant_uid, never re-charged under a new one.
    const pendingCharges = await em.find(
      Payment,
      { status: PaymentStatus.PENDING, kind: PaymentKind.AGAIN, createdAt: { $lt: new Date(localNow - this.pendingGraceMs) } },
      { orderBy: { id: "asc" }, limit: BATCH },
    );
    for (const p of pendingCharges) {
      await each(`pending charge ${p.merchantUid}`, async (ctx) => {
        await this.settleCharge(ctx, p.id, localNow);
        report.pendingCharges += 1;
      });
    }

    // 3. Schedules whose registration outcome is unknown: look up, register the missing ones.
    const unregistered = await em.find(
      Payment,
      { status: PaymentStatus.PENDING, kind: PaymentKind.SCHEDULE, createdAt: { $lt: new Date(localNow - this.pendingGraceMs) } },
      // Least recently checked first: rows that keep failing cannot starve the others out of the batch.
      { orderBy: { checkedAt: QueryOrder.ASC_NULLS_FIRST, id: QueryOrder.ASC }, limit: BATCH },
    );
    for (const p of unregistered) {
      await each(`schedule registration ${p.merchantUid}`, async (ctx) => {
        try {
          const impUid = await this.settleRegistration(ctx, p.id);
          if (impUid) await this.verifyByImpUid(ctx, impUid);
        } catch (err) {
          // Its turn comes after the others next time (the batch is ordered by checkedAt).
          await root.em.fork().nativeUpdate(Payment, { id: p.id }, { checkedAt: new Date() });
          throw err;
        }
        report.unregisteredSchedules += 1;
      });
    }

    // 4. Schedules whose time has passed (by Iamport's clock) without a result: the lost webhook.
    const due = await em.find(
      Payment,
      { status: PaymentStatus.SCHEDULED, scheduledAt: { $lte: new Date(iamportNow.getTime() - 5_000) } },
      { orderBy: { checkedAt: QueryOrder.ASC_NULLS_FIRST, scheduledAt: QueryOrder.ASC }, limit: BATCH },
    );
    for (const p of due) {
      await each(`due schedule ${p.merchantUid}`, async (ctx) => {
        const row = await ctx.em.findOneOrFail(Payment, { id: p.id });
        await this.services.schedules.lookUp(ctx, [row]);
        if (row.impUid) await this.verifyByImpUid(ctx, row.impUid);
        report.dueSchedules += 1;
      });
    }

    // 5. Subscriptions canceled at period end whose period is over.
    await each("period-end cancellations", async (ctx) => {
      report.expired += await this.services.subscriptions.expireCanceledAtPeriodEnd(ctx, iamportNow);
    });
    // 5a. Notices due before charges (those that fell due while no server ran included).
    await each("notices", async (ctx) => {
      report.notices += await this.services.notices.sendDue(ctx, iamportNow, BATCH);
    });
    // 5c. Price increases still unanswered a day before their renewal: the subscription ends at the old price instead.
    await each("unanswered price changes", async (ctx) => {
      report.priceChangesExpired += await this.services.priceChanges.expireUnanswered(ctx, iamportNow, BATCH);
    });
    // 5d. Plan changes the customer consented to before their renewal was claimed: that claim takes the new plan.
    await each("accepted plan changes", async (ctx) => {
      report.planChangesApplied += await this.services.priceChanges.applyAcceptedPlans(ctx, BATCH);
    });
    // 5b. Free trials over without the customer's consent: they end, nothing charged.
    await each("ended trials", async (ctx) => {
      report.trialsEnded += await this.services.subscriptions.endTrials(ctx, iamportNow, BATCH);
    });
    // Paused subscriptions whose resumesAt has come (Iamport's clock): resumed, a new period charged.
    await each("due resumes", async (ctx) => {
      report.resumed += await this.services.subscriptions.resumeDue(ctx, iamportNow, BATCH);
    });
    // 6. Refunds that cancellations claimed and could not confirm (Iamport unreachable, a crash after the claim).
    await each("claimed refunds", async (ctx) => {
      report.refundsFinished += await this.services.subscriptions.finishClaimedRefunds(ctx, BATCH);
    });
    // 7. Browser checkouts still PENDING and virtual accounts still READY: their webhook may have been
    // lost (a deposit made, a card paid). Each is asked about at most every CHECKOUT_RECHECK_MS, for a week.
    const checkouts = await em.find(
      Payment,
      {
        kind: PaymentKind.CHECKOUT,
        status: { $in: [PaymentStatus.PENDING, PaymentStatus.READY] },
        createdAt: { $lt: new Date(localNow - this.pendingGraceMs), $gt: new Date(localNow - CHECKOUT_WATCH_MS) },
        $or: [{ checkedAt: null }, { checkedAt: { $lt: new Date(localNow - CHECKOUT_RECHECK_MS) } }],
      },
      { orderBy: { checkedAt: QueryOrder.ASC_NULLS_FIRST, id: QueryOrder.ASC }, limit: BATCH },
    );
    for (const p of checkouts) {
      await each(`checkout ${p.merchantUid}`, async (ctx) => {
        const row = await ctx.em.findOneOrFail(Payment, { id: p.id });
        let ip;
        try {
          ip = await this.deps.provider.findByOrder(row.merchantUid, { requestId: ctx.requestId });
        } catch (err) {
          if (!(err instanceof IamportNotFoundError)) throw err;
          row.checkedAt = new Date(); // not paid (yet): asked again later
          await ctx.em.flush();
          return;
        }
        await this.services.settlement.settleAnswer(ctx, ip);
        report.checkouts += 1;
      });
    }

    // 6. Schedules left open at subscriptions that can no longer be charged (a revocation that could not be sent).
    await each("ended subscriptions' schedules", async (ctx) => {
      report.orphansRevoked += await this.services.subscriptions.revokeOrphans(ctx, BATCH);
    });
    // 8. Idempotency keys past their time (an expired key is already ignored; this frees the space).
    await each("expired idempotency keys", async (ctx) => {
      report.idempotencyKeysPurged += await purgeExpiredIdempotencyKeys(ctx, 10 * BATCH);
    });
    if (Object.values(report).some((n) => n > 0)) {
      root.log.info({ reconcile: report }, "reconciliation run");
    }
    return report;
  }

  private async verifyByImpUid(ctx: Ctx, impUid: string): Promise<void> {
    await this.services.payments.verify(ctx, impUid);
  }

  /**
   * Looks a PENDING schedule up at Iamport and registers it when Iamport never
   * got it, with no lock held while Iamport answers (a second registration of
   * the same merchant_uid is refused by Iamport and found by the look-up);
   * one Iamport refuses to register is settled FAILED with its reason, so it
   * is not asked about again. A subscription's charge goes through the
   * executor (its refusal ends dunning). Returns the imp_uid when the
   * schedule already ran, for verification.
   */
  private async settleRegistration(ctx: Ctx, id: string): Promise<string | null> {
    const row = await ctx.em.findOneOrFail(Payment, { id }, { refresh: true });
    if (row.subscription) return this.services.settlement.registerUnregistered(ctx, id);
    if (row.status !== PaymentStatus.PENDING) return null;
    const missing = await this.services.schedules.lookUp(ctx, [row]);
    if (row.impUid) return row.impUid;
    if (missing.length === 0) return null;
    try {
      await this.services.schedules.register(ctx, row.customerUid!, missing, { keepRowsOnRefusal: true });
    } catch (err) {
      if (!(err instanceof BadUserInputError)) throw err;
      // Refused (the billing key was deleted at Iamport, its time has passed...): it can never run.
      const reason = this.services.schedules.failRefused(missing, err, new Date());
      ctx.log.warn({ merchantUid: row.merchantUid, reason }, "schedule refused by Iamport; counted as failed");
      await ctx.em.flush();
    }
    return null;
  }

  private async settleCharge(ctx: Ctx, id: string, localNow: number): Promise<void> {
    const row = await ctx.em.findOneOrFail(Payment, { id });
    try {
      const askedAt = new Date();
      const ip = await this.deps.provider.findByOrder(row.merchantUid, { requestId: ctx.requestId });
      await this.services.settlement.settleAnswer(ctx, ip, { askedAt });
      return;
    } catch (err) {
      if (!(err instanceof IamportNotFoundError)) throw err;
    }
    if (row.subscription) {
      // Iamport never saw it: charge with the SAME merchant_uid (Iamport refuses a paid one twice).
      await this.services.subscriptions.chargeAndApply(ctx, row);
    } else if (localNow - row.createdAt.getTime() > ABANDON_AFTER_MS) {
      // Only if still PENDING: a repeated chargeAgain may have charged and recorded it meanwhile.
      const now = new Date();
      await ctx.em.nativeUpdate(
        Payment,
        { id: row.id, status: PaymentStatus.PENDING },
        { status: PaymentStatus.FAILED, failReason: `${this.deps.provider.label} has no record of this charge: it was never made`, failedAt: now, checkedAt: now, updatedAt: now },
      );
    }
  }
}
