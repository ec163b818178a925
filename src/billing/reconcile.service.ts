import { Payment, WebhookEvent } from "../db/entities";
import { PaymentKind, PaymentStatus } from "../db/entities/enums";
import { toAppError } from "../errors";
import { IamportNotFoundError } from "../iamport/iamport.errors";
import type { BillingDeps, Ctx } from "./context";
import type { Services } from "./services";

export interface ReconcileReport {
  events: number;
  pendingCharges: number;
  unregisteredSchedules: number;
  dueSchedules: number;
  expired: number;
  errors: number;
}

/** How long a PENDING charge may stay unanswered before it is settled (a charge in flight is not touched). */
const PENDING_GRACE_MS = 30_000;
/** After this long with no record at Iamport, a non-subscription charge is declared never made. */
const ABANDON_AFTER_MS = 10 * 60_000;
const BATCH = 200;

/**
 * Reconciliation: the answer to lost webhooks and unknown outcomes. Each step
 * asks Iamport and applies exactly what the webhook would have, through the
 * same verification and renewal code, so running it twice changes nothing.
 */
export class ReconcileService {
  constructor(
    private readonly deps: BillingDeps,
    private readonly services: Services,
  ) {}

  async runOnce(root: Ctx): Promise<ReconcileReport> {
    const report: ReconcileReport = { events: 0, pendingCharges: 0, unregisteredSchedules: 0, dueSchedules: 0, expired: 0, errors: 0 };
    const iamportNow = new Date((await this.deps.iamport.serverNow()) * 1000);
    const localNow = Date.now();
    const each = async (what: string, fn: (ctx: Ctx) => Promise<void>) => {
      const ctx: Ctx = { ...root, em: root.em.fork() };
      try {
        await fn(ctx);
      } catch (err) {
        report.errors += 1;
        const e = toAppError(err);
        root.log.warn({ what, code: e.code, err: e.message }, "reconciliation step failed; will retry next run");
      }
    };

    // 1. Webhooks recorded but not processed (the server died mid-way, or Iamport was down).
    const events = await this.services.webhooks.pending({ ...root, em: root.em.fork() }, 10, BATCH);
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
      { status: PaymentStatus.PENDING, kind: PaymentKind.AGAIN, createdAt: { $lt: new Date(localNow - PENDING_GRACE_MS) } },
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
      { status: PaymentStatus.PENDING, kind: PaymentKind.SCHEDULE, createdAt: { $lt: new Date(localNow - PENDING_GRACE_MS) } },
      { orderBy: { id: "asc" }, limit: BATCH },
    );
    for (const p of unregistered) {
      await each(`schedule registration ${p.merchantUid}`, async (ctx) => {
        const row = await ctx.em.findOneOrFail(Payment, { id: p.id });
        const missing = await this.services.payments.settleSchedules(ctx, [row]);
        if (row.impUid) await this.verifyByImpUid(ctx, row.impUid);
        else if (missing.length > 0) await this.services.payments.registerSchedules(ctx, row.customerUid!, missing, { keepRowsOnRefusal: true });
        report.unregisteredSchedules += 1;
      });
    }

    // 4. Schedules whose time has passed (by Iamport's clock) without a result: the lost webhook.
    const due = await em.find(
      Payment,
      { status: PaymentStatus.SCHEDULED, scheduledAt: { $lte: new Date(iamportNow.getTime() - 5_000) } },
      { orderBy: { scheduledAt: "asc" }, limit: BATCH },
    );
    for (const p of due) {
      await each(`due schedule ${p.merchantUid}`, async (ctx) => {
        const row = await ctx.em.findOneOrFail(Payment, { id: p.id });
        await this.services.payments.settleSchedules(ctx, [row]);
        if (row.impUid) await this.verifyByImpUid(ctx, row.impUid);
        report.dueSchedules += 1;
      });
    }

    // 5. Subscriptions canceled at period end whose period is over.
    await each("period-end cancellations", async (ctx) => {
      report.expired += await this.services.subscriptions.expireCanceledAtPeriodEnd(ctx, iamportNow);
    });
    if (report.events + report.pendingCharges + report.unregisteredSchedules + report.dueSchedules + report.expired + report.errors > 0) {
      root.log.info({ reconcile: report }, "reconciliation run");
    }
    return report;
  }

  private async verifyByImpUid(ctx: Ctx, impUid: string): Promise<void> {
    await this.services.payments.verify(ctx, impUid, null, this.services.webhooks.afterVerification);
  }

  private async settleCharge(ctx: Ctx, id: string, localNow: number): Promise<void> {
    const row = await ctx.em.findOneOrFail(Payment, { id });
    try {
      const ip = await this.deps.iamport.findPayment(row.merchantUid, { requestId: ctx.requestId });
      await this.services.payments.verifyFetched(ctx, ip, null, this.services.webhooks.afterVerification);
      return;
    } catch (err) {
      if (!(err instanceof IamportNotFoundError)) throw err;
    }
    if (row.subscription) {
      // Iamport never saw it: repeat with the SAME merchant_uid (Iamport refuses a paid one twice).
      await this.services.subscriptions.chargeAndApply(ctx, row);
    } else if (localNow - row.createdAt.getTime() > ABANDON_AFTER_MS) {
      row.status = PaymentStatus.FAILED;
      row.failReason = "Iamport has no record of this charge: it was never made";
      row.failedAt = new Date();
      await ctx.em.flush();
    }
  }
}
