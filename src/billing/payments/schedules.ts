import type { Payment } from "../../db/entities";
import { PaymentStatus } from "../../db/entities/enums";
import { BadUserInputError, OutcomeUnknownError } from "../../errors";
import { IamportNotFoundError, IamportRefusedError, type ProviderSchedule, type ScheduleRequest } from "../../provider/port";
import { taxFields } from "../domain/tax";
import { afterIamport, outcomeUnknown, upstreamError, type BillingDeps, type Ctx } from "../context";

/**
 * Registering charges with Iamport's scheduler, and looking registrations up
 * by merchant_uid: for schedulePayments, a subscription's next charge, and
 * reconciliation of registrations whose outcome is unknown.
 */
export class ScheduleRegistrar {
  constructor(private readonly deps: BillingDeps) {}

  /**
   * Sends PENDING schedule rows to Iamport and marks them SCHEDULED. On an
   * unknown outcome each one is looked up by merchant_uid. Once Iamport may
   * hold the schedules, a failure is OUTCOME_UNKNOWN naming their merchant_uids.
   */
  async register(
    ctx: Ctx,
    customerUid: string,
    rows: Payment[],
    opts: { keepRowsOnRefusal?: boolean } = {},
  ): Promise<Payment[]> {
    const entries = rows.map((p) => this.entry(p));
    const unknown = (cause: unknown) =>
      new OutcomeUnknownError(rows[0].merchantUid, { cause, details: { merchantUids: rows.map((p) => p.merchantUid) } });
    let results: ProviderSchedule[];
    try {
      results = await this.deps.provider.schedule(customerUid, entries, { requestId: ctx.requestId });
    } catch (err) {
      if (!(err instanceof IamportRefusedError) && !outcomeUnknown(err)) throw upstreamError(err, "schedule");
      return afterIamport(ctx, rows[0].merchantUid, () => this.settleCall(ctx, customerUid, rows, err, opts), {
        keep: ["BAD_USER_INPUT"],
        unknown,
      });
    }
    return afterIamport(
      ctx,
      rows[0].merchantUid,
      async () => {
        const byUid = new Map(results.map((r) => [r.merchant_uid, r]));
        for (const p of rows) this.apply(p, byUid.get(p.merchantUid));
        await ctx.em.flush();
        return rows;
      },
      { unknown },
    );
  }

  /** Settles a schedule call that Iamport refused or whose answer was lost. */
  private async settleCall(
    ctx: Ctx,
    customerUid: string,
    rows: Payment[],
    err: unknown,
    opts: { keepRowsOnRefusal?: boolean },
  ): Promise<Payment[]> {
    if (err instanceof IamportRefusedError) {
      // A redelivery may find its merchant_uid already registered: that is success, not refusal.
      const missing = await this.lookUp(ctx, rows);
      if (missing.length === 0) return rows;
      if (opts.keepRowsOnRefusal) throw new BadUserInputError("schedules", `${err.provider} refused the schedule: ${err.iamportMessage}`);
      // Nothing was scheduled: the rows must not stay as if it were.
      ctx.em.remove(rows);
      await ctx.em.flush();
      throw new BadUserInputError("schedules", `${err.provider} refused the schedule: ${err.iamportMessage}`);
    }
    ctx.log.warn({ customerUid, count: rows.length }, "schedule outcome unknown; looking each one up");
    const unresolved = await this.lookUp(ctx, rows);
    if (unresolved.length > 0) {
      // Never registered: one more attempt with the same merchant_uids is safe (Iamport refuses duplicates).
      return this.registerOnce(ctx, customerUid, rows, unresolved);
    }
    return rows;
  }

  private async registerOnce(ctx: Ctx, customerUid: string, all: Payment[], missing: Payment[]): Promise<Payment[]> {
    try {
      // The same entries as the first attempt (currency and buyer included).
      const entries = missing.map((p) => this.entry(p));
      const results = await this.deps.provider.schedule(customerUid, entries, { requestId: ctx.requestId });
      const byUid = new Map(results.map((r) => [r.merchant_uid, r]));
      for (const p of missing) this.apply(p, byUid.get(p.merchantUid));
      await ctx.em.flush();
      return all;
    } catch (err) {
      // The payments stay PENDING and are settled by reconciliation.
      throw new OutcomeUnknownError(all[0].merchantUid, { cause: err, details: { merchantUids: all.map((p) => p.merchantUid) } });
    }
  }

  /** The entry Iamport is sent for a PENDING schedule row (its own merchant_uid, so a repeat cannot double it). */
  entry(p: Payment): ScheduleRequest {
    return {
      merchantUid: p.merchantUid,
      at: Math.floor(p.scheduledAt!.getTime() / 1000),
      amount: p.amount,
      name: p.name,
      currency: p.currency,
      buyerName: p.buyerName ?? undefined,
      buyerEmail: p.buyerEmail ?? undefined,
      buyerTel: p.buyerTel ?? undefined,
      noticeUrl: this.noticeUrl(),
      ...taxFields(p),
    };
  }

  /**
   * Records PENDING schedule rows that Iamport refused to register (its
   * `registerSchedules` refusal) as FAILED with Iamport's reason: they can
   * never run. Returns the reason.
   */
  failRefused(rows: Payment[], refusal: BadUserInputError, at: Date): string {
    const reason = refusal.message.replace(/^schedules /, "");
    for (const p of rows) {
      if (p.status !== PaymentStatus.PENDING) continue;
      p.status = PaymentStatus.FAILED;
      p.failReason = reason;
      p.failedAt = at;
      p.checkedAt = new Date();
    }
    return reason;
  }

  /** Looks up schedules by merchant_uid; returns the rows Iamport has no record of. */
  async lookUp(ctx: Ctx, rows: Payment[]): Promise<Payment[]> {
    const missing: Payment[] = [];
    for (const p of rows) {
      try {
        const s = await this.deps.provider.getSchedule(p.merchantUid, { requestId: ctx.requestId });
        this.apply(p, s);
      } catch (err) {
        if (err instanceof IamportNotFoundError) missing.push(p);
        else throw upstreamError(err, `schedule ${p.merchantUid}`);
      }
    }
    await ctx.em.flush();
    return missing;
  }

  /** Copies a schedule result onto its payment row (a schedule that already ran counts as its payment). */
  apply(p: Payment, s: ProviderSchedule | undefined): void {
    if (!s) return;
    p.checkedAt = new Date();
    if (s.schedule_status === "revoked") {
      p.status = PaymentStatus.REVOKED;
      return;
    }
    if (s.schedule_status === "scheduled") {
      if (p.status === PaymentStatus.PENDING) p.status = PaymentStatus.SCHEDULED;
      p.scheduledAt = new Date(s.schedule_at * 1000);
      return;
    }
    // executed: the payment itself (fetched by the caller) is the truth; keep imp_uid for it.
    if (s.imp_uid && !p.impUid) p.impUid = s.imp_uid;
  }

  /** Where Iamport posts the outcome of a scheduled charge. */
  noticeUrl(): string {
    return `${this.deps.config.publicUrl}/iamport-callback/schedule`;
  }
}
