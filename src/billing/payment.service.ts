import { UniqueConstraintViolationException } from "@mikro-orm/core";
import { Payment } from "../db/entities";
import { PaymentKind, PaymentStatus } from "../db/entities/enums";
import { BadUserInputError, ConflictError, NotFoundError, OutcomeUnknownError, UpstreamUnavailableError } from "../errors";
import { IamportNotFoundError, IamportRefusedError, type ChargeRequest, type ProviderPayment, type ProviderSchedule } from "../provider/port";
import { requireActiveCard } from "./card.service";
import type { ScheduleRegistrar } from "./payments/schedules";
import type { Settlement, VerifiedPayment } from "./settlement";
import { afterIamport, BillingDeps, Ctx, guardUnique, newMerchantUid, outcomeUnknown, upstreamError } from "./context";
import { findPayment, listPayments, type PaymentListFilter, type PaymentViewRow } from "../db/repositories/payments";
import { decodeCursor, encodeCursor, Page } from "./pagination";
import {
  checkAmount,
  checkFuture,
  checkMerchantUid,
  checkText,
  checkTaxParts,
  checkUid,
  optionalText,
} from "./validation";
import { refundParts, taxFields } from "./domain/tax";

export interface ChargeAgainInput {
  customerUid: string;
  amount: number;
  name: string;
  taxFreeAmount?: number | null;
  vatAmount?: number | null;
  merchantUid?: string | null;
  buyerName?: string | null;
  buyerEmail?: string | null;
  buyerTel?: string | null;
}

export interface ScheduleItemInput {
  scheduleAt: Date;
  amount: number;
  name: string;
  taxFreeAmount?: number | null;
  vatAmount?: number | null;
  merchantUid?: string | null;
  buyerName?: string | null;
  buyerEmail?: string | null;
  buyerTel?: string | null;
}

export interface PreparePaymentInput {
  amount: number;
  name: string;
  merchantUid?: string | null;
  customerUid?: string | null;
}

export interface RefundInput {
  merchantUid: string;
  amount?: number | null;
  reason: string;
}

export interface PaymentFilter {
  customerUid?: string | null;
  subscriptionId?: string | null;
  status?: PaymentStatus | null;
}

/** A look-up of Iamport's payment already under way, and when it was asked. */
export interface Prefetched {
  at: Date;
  payment: Promise<ProviderPayment>;
}

export const MAX_PAGE = 100;

/** Charges, schedules, verification and refunds of orders (merchant_uids). */
export class PaymentService {
  constructor(
    private readonly deps: BillingDeps,
    private readonly settlement: Settlement,
    private readonly schedules: ScheduleRegistrar,
  ) {}

  // ---- charging a billing key ---------------------------------------------

  /**
   * Charges a billing key now. The order is committed as PENDING before Iamport
   * is called, so a crash or timeout leaves a row that is settled by asking
   * Iamport about its merchant_uid, never by charging under a new one.
   *
   * A merchantUid that already has a payment is a repeat of that request when
   * customerUid, amount and name are the same (a client retrying after a lost
   * answer or OUTCOME_UNKNOWN): the stored payment is the answer, and one still
   * PENDING is first settled with Iamport (charged now, under the same
   * merchant_uid, only if Iamport never got it). A different request under a
   * used merchantUid is CONFLICT.
   */
  async chargeAgain(ctx: Ctx, input: ChargeAgainInput): Promise<Payment> {
    const customerUid = checkUid("customerUid", input.customerUid);
    const amount = checkAmount("amount", input.amount, this.deps.config.maxAmount);
    const name = checkText("name", input.name, 200);
    const tax = checkTaxParts("", amount, input.taxFreeAmount, input.vatAmount);
    const merchantUid = input.merchantUid ? checkMerchantUid("merchantUid", input.merchantUid) : newMerchantUid(ctx);
    const buyer = this.buyer(input);
    const request = { merchantUid, customerUid, amount, name, ...tax };
    if (input.merchantUid) {
      const stored = await ctx.em.findOne(Payment, { merchantUid });
      if (stored) return this.repeatCharge(ctx, stored, request);
    }
    await requireActiveCard(ctx, customerUid);

    const payment = ctx.em.create(Payment, {
      merchantUid,
      customerUid,
      name,
      amount,
      ...tax,
      kind: PaymentKind.AGAIN,
      status: PaymentStatus.PENDING,
      ...buyer,
    });
    try {
      await ctx.em.persistAndFlush(payment);
    } catch (err) {
      if (!(err instanceof UniqueConstraintViolationException)) throw err;
      // The same merchantUid arrived twice at once: the first one's row answers this one too.
      ctx.em.clear();
      const stored = await ctx.em.findOne(Payment, { merchantUid });
      if (!stored) throw err;
      return this.repeatCharge(ctx, stored, request);
    }
    return this.executeAgain(ctx, payment);
  }

  /** A chargeAgain under a merchantUid that already has a payment (see chargeAgain). */
  private async repeatCharge(
    ctx: Ctx,
    stored: Payment,
    request: { merchantUid: string; customerUid: string; amount: number; name: string; taxFreeAmount: number; vatAmount: number | null },
  ): Promise<Payment> {
    const same =
      stored.kind === PaymentKind.AGAIN &&
      !stored.subscription &&
      stored.customerUid === request.customerUid &&
      stored.amount === request.amount &&
      stored.name === request.name &&
      stored.taxFreeAmount === request.taxFreeAmount &&
      (stored.vatAmount ?? null) === request.vatAmount;
    if (!same) {
      throw new ConflictError(
        `A payment with merchantUid ${request.merchantUid} already exists for another request (a repeat must have the same customerUid, amount, name and tax parts)`,
        { merchantUid: request.merchantUid },
      );
    }
    if (stored.status !== PaymentStatus.PENDING) return stored;
    ctx.log.info({ merchantUid: stored.merchantUid }, "repeated charge of a PENDING payment; settling it with Iamport");
    // Iamport first: the earlier request may have been charged and only its answer lost.
    const known = await afterIamport(ctx, stored.merchantUid, () => this.settle(ctx, stored));
    if (known) return stored;
    // Iamport never got it: charging now under the same merchant_uid cannot charge twice.
    return this.executeAgain(ctx, stored);
  }

  /**
   * Sends `again` for a PENDING payment row and records the outcome (always
   * under the row's own merchant_uid). A call Iamport never executed (no
   * token, refused connection, 401) is UPSTREAM_UNAVAILABLE; from the moment
   * Iamport may have charged, any failure is OUTCOME_UNKNOWN (see afterIamport).
   */
  async executeAgain(ctx: Ctx, payment: Payment, opts: { noticeUrl?: string; repeatOnNoRecord?: boolean } = {}): Promise<Payment> {
    let ip: ProviderPayment;
    const askedAt = new Date();
    try {
      ip = await this.deps.provider.charge(againRequest(payment, opts.noticeUrl), { requestId: ctx.requestId });
    } catch (err) {
      if (!(err instanceof IamportRefusedError) && !outcomeUnknown(err)) throw upstreamError(err, "charge");
      return afterIamport(ctx, payment.merchantUid, () => this.settleAgain(ctx, payment, err, opts));
    }
    return afterIamport(ctx, payment.merchantUid, async () => {
      await this.record(ctx, payment, ip, askedAt);
      ctx.log.info({ merchantUid: payment.merchantUid, status: payment.status }, "charge recorded");
      return payment;
    });
  }

  /** Settles a charge whose `again` was refused or whose answer was lost. */
  private async settleAgain(ctx: Ctx, payment: Payment, err: unknown, opts: { noticeUrl?: string; repeatOnNoRecord?: boolean }): Promise<Payment> {
    if (err instanceof IamportRefusedError) {
      // A refusal may mean "this merchant_uid is already paid" (a repeat after a
      // lost answer): what Iamport has for the order wins over the refusal.
      if (await this.settle(ctx, payment)) return payment;
      // Refused outright (e.g. unknown billing key): nothing was charged. Recorded FAILED by the executor.
      await this.settlement.settleUnmade(ctx, payment.id, err.iamportMessage);
      await ctx.em.refresh(payment);
      return payment;
    }
    ctx.log.warn({ merchantUid: payment.merchantUid, err: (err as Error).message }, "charge outcome unknown; settling by merchant_uid");
    if (await this.settle(ctx, payment)) return payment;
    if (opts.repeatOnNoRecord !== false) {
      // Iamport has no record of it: repeating with the SAME merchant_uid cannot double-charge.
      return this.executeAgain(ctx, payment, { ...opts, repeatOnNoRecord: false });
    }
    throw new OutcomeUnknownError(payment.merchantUid, { cause: err });
  }

  /**
   * Asks Iamport what happened to an order and applies it. Returns false when
   * Iamport has no record of the order (it was never charged).
   * Throws UPSTREAM_UNAVAILABLE when Iamport cannot be asked.
   */
  async settle(ctx: Ctx, payment: Payment): Promise<boolean> {
    let ip: ProviderPayment;
    const askedAt = new Date();
    try {
      ip = await this.deps.provider.findByOrder(payment.merchantUid, { requestId: ctx.requestId });
    } catch (err) {
      if (err instanceof IamportNotFoundError) {
        payment.checkedAt = new Date();
        await ctx.em.flush();
        return false;
      }
      throw upstreamError(err, `payment ${payment.merchantUid}`);
    }
    await this.record(ctx, payment, ip, askedAt);
    return true;
  }

  // ---- schedules -----------------------------------------------------------

  /**
   * Registers future charges of a billing key with Iamport's scheduler. A
   * request whose merchantUids all exist already, each for the same customer,
   * time, amount and name, is a repeat (after a lost answer or
   * OUTCOME_UNKNOWN): the stored rows answer it, those still PENDING settled
   * with Iamport first. Any other use of an existing merchantUid is CONFLICT.
   */
  async schedule(ctx: Ctx, customerUidRaw: string, items: ScheduleItemInput[]): Promise<Payment[]> {
    const customerUid = checkUid("customerUid", customerUidRaw);
    if (items.length === 0) throw new BadUserInputError("schedules", "must contain at least one schedule");
    if (items.length > 100) throw new BadUserInputError("schedules", "must contain at most 100 schedules");
    const now = new Date();
    const seen = new Set<string>();
    const wanted = items.map((item, i) => {
      const field = `schedules[${i}]`;
      const scheduledAt = checkFuture(`${field}.scheduleAt`, item.scheduleAt, now);
      const amount = checkAmount(`${field}.amount`, item.amount, this.deps.config.maxAmount);
      const name = checkText(`${field}.name`, item.name, 200);
      const tax = checkTaxParts(`${field}.`, amount, item.taxFreeAmount, item.vatAmount);
      const merchantUid = item.merchantUid ? checkMerchantUid(`${field}.merchantUid`, item.merchantUid) : newMerchantUid(ctx, "sch");
      if (seen.has(merchantUid)) throw new BadUserInputError(`${field}.merchantUid`, "is repeated in this request");
      seen.add(merchantUid);
      return { merchantUid, customerUid, name, amount, ...tax, scheduledAt, ...this.buyer(item) };
    });
    if (items.every((item) => item.merchantUid)) {
      const stored = await ctx.em.find(Payment, { merchantUid: { $in: wanted.map((w) => w.merchantUid) } });
      if (stored.length > 0) return this.repeatSchedule(ctx, customerUid, wanted, stored);
    }
    await requireActiveCard(ctx, customerUid);
    const rows = wanted.map((w) => ctx.em.create(Payment, { ...w, kind: PaymentKind.SCHEDULE, status: PaymentStatus.PENDING }));
    await guardUnique("A payment with one of these merchantUids", () => ctx.em.persistAndFlush(rows));
    return this.schedules.register(ctx, customerUid, rows);
  }

  /** A schedulePayments whose merchantUids exist already (see schedule). */
  private async repeatSchedule(
    ctx: Ctx,
    customerUid: string,
    wanted: { merchantUid: string; customerUid: string; name: string; amount: number; taxFreeAmount: number; vatAmount: number | null; scheduledAt: Date }[],
    stored: Payment[],
  ): Promise<Payment[]> {
    const byUid = new Map(stored.map((p) => [p.merchantUid, p]));
    const rows = wanted.map((w) => byUid.get(w.merchantUid));
    const same = rows.every(
      (p, i) =>
        p !== undefined &&
        p.kind === PaymentKind.SCHEDULE &&
        !p.subscription &&
        p.customerUid === wanted[i].customerUid &&
        p.amount === wanted[i].amount &&
        p.name === wanted[i].name &&
        p.taxFreeAmount === wanted[i].taxFreeAmount &&
        (p.vatAmount ?? null) === wanted[i].vatAmount &&
        // Iamport keeps whole seconds, and a registered row holds Iamport's time.
        !!p.scheduledAt &&
        Math.floor(p.scheduledAt.getTime() / 1000) === Math.floor(wanted[i].scheduledAt.getTime() / 1000),
    );
    if (!same) {
      throw new ConflictError(
        "A payment with one of these merchantUids already exists for another request (a repeat must have the same merchantUids, customerUid, times, amounts and names)",
      );
    }
    const found = rows as Payment[];
    const pending = found.filter((p) => p.status === PaymentStatus.PENDING);
    // Iamport refuses a merchant_uid it already holds, and registerSchedules then finds it there.
    if (pending.length > 0) await this.schedules.register(ctx, customerUid, pending);
    return found;
  }

  /** Revokes schedules at Iamport (all of the customer's when merchantUids is omitted). */
  async unschedule(ctx: Ctx, customerUidRaw: string, merchantUidsRaw?: string[] | null): Promise<Payment[]> {
    const customerUid = checkUid("customerUid", customerUidRaw);
    const merchantUids = merchantUidsRaw?.map((m, i) => checkUid(`merchantUids[${i}]`, m));
    if (merchantUids && merchantUids.length === 0) throw new BadUserInputError("merchantUids", "must not be empty when given");
    let revoked: ProviderSchedule[];
    try {
      revoked = await this.deps.provider.revoke(customerUid, merchantUids, { requestId: ctx.requestId });
    } catch (err) {
      if (err instanceof IamportRefusedError || err instanceof IamportNotFoundError) {
        throw new NotFoundError(`A schedule to revoke for ${customerUid}`);
      }
      throw upstreamError(err, "unschedule");
    }
    const uids = revoked.map((s) => s.merchant_uid);
    if (uids.length === 0) return [];
    const rows = await ctx.em.find(Payment, { merchantUid: { $in: uids } }, { orderBy: { id: "asc" } });
    for (const p of rows) {
      if (p.status === PaymentStatus.SCHEDULED || p.status === PaymentStatus.PENDING) p.status = PaymentStatus.REVOKED;
    }
    await ctx.em.flush();
    return rows;
  }

  // ---- browser checkout ------------------------------------------------------

  /** Records an order before a browser checkout and registers its amount with Iamport's prepare. */
  async prepare(ctx: Ctx, input: PreparePaymentInput): Promise<Payment> {
    const amount = checkAmount("amount", input.amount, this.deps.config.maxAmount);
    const name = checkText("name", input.name, 200);
    const merchantUid = input.merchantUid ? checkMerchantUid("merchantUid", input.merchantUid) : newMerchantUid(ctx, "ord");
    const customerUid = input.customerUid ? checkUid("customerUid", input.customerUid) : null;
    const payment = ctx.em.create(Payment, {
      merchantUid,
      customerUid,
      name,
      amount,
      kind: PaymentKind.CHECKOUT,
      status: PaymentStatus.PENDING,
    });
    await guardUnique(`A payment with merchantUid ${merchantUid}`, () => ctx.em.persistAndFlush(payment));
    try {
      await this.deps.provider.prepare(merchantUid, amount, { requestId: ctx.requestId });
    } catch (err) {
      ctx.em.remove(payment);
      await ctx.em.flush();
      if (err instanceof IamportRefusedError) throw new ConflictError(`${err.provider} refused to prepare ${merchantUid}: ${err.iamportMessage}`);
      throw upstreamError(err, "prepare");
    }
    return payment;
  }

  // ---- verification ----------------------------------------------------------

  /**
   * Fetches the payment from Iamport by imp_uid, finds the order by the
   * merchant_uid IAMPORT reports (never the caller's), and settles it
   * through the executor (settlement.ts): under the row locks, so concurrent
   * deliveries serialize and act once, with the renewal step of a
   * subscription's charge. `claimedMerchantUid`: the caller's order, checked
   * against Iamport's (verifyPayment, browser returns).
   */
  async verify(ctx: Ctx, impUidRaw: string, claimedMerchantUid?: string | null, prefetched?: Prefetched): Promise<VerifiedPayment> {
    const impUid = checkUid("impUid", impUidRaw);
    const claimed = claimedMerchantUid === undefined || claimedMerchantUid === null ? undefined : checkUid("merchantUid", claimedMerchantUid);
    const { at: askedAt, payment } = prefetched ?? this.prefetch(ctx, impUid);
    let ip: ProviderPayment;
    try {
      ip = await payment;
    } catch (err) {
      throw upstreamError(err, `Payment ${impUid}`);
    }
    // Recording what Iamport said may fail half-way (the database lost at the commit): the answer
    // then says the outcome is unknown, naming the order, rather than that nothing happened.
    return afterIamport(ctx, claimed ?? ip.merchant_uid, () => this.settlement.settleAnswer(ctx, ip, { claimedMerchantUid: claimed, askedAt }), {
      // Answers about the request (no such order) and an Iamport that could not be asked again under
      // the row lock (the transaction is rolled back: nothing was recorded) keep their codes.
      keep: ["NOT_FOUND", "BAD_USER_INPUT", "UPSTREAM_UNAVAILABLE"],
    });
  }

  /**
   * Starts asking Iamport about a payment (verify's first step), so a caller
   * can do its own work meanwhile (the webhook inbox records the event). The
   * promise never rejects unobserved: verify awaits it.
   */
  prefetch(ctx: Ctx, impUidRaw: string): Prefetched {
    const at = new Date();
    const payment = this.deps.provider.getPayment(checkUid("impUid", impUidRaw), { requestId: ctx.requestId });
    payment.catch(() => undefined);
    return { at, payment };
  }

  /**
   * Applies Iamport's answer (asked for at `askedAt`) about a payment this
   * service just charged, refunded or looked up, through the executor
   * (settlement.ts), as a webhook's is: under the row locks, from the row as
   * committed, so two answers about one payment (a refund and its webhook, a
   * racing refund's look-up) record its change and its events once, and an
   * answer older than the row is asked again. The answer is settled as this
   * payment's (a payment of another order is not applied to it), and
   * `payment` is then read again, as committed, for the caller.
   */
  private async record(ctx: Ctx, payment: Payment, ip: ProviderPayment, askedAt: Date): Promise<void> {
    await this.settlement.settleAnswer(ctx, ip, { claimedMerchantUid: payment.merchantUid, askedAt });
    await ctx.em.refresh(payment);
  }

  // ---- refunds ---------------------------------------------------------------

  /**
   * Refunds all or part of a paid payment. Iamport's checksum (the refundable
   * balance this server expects) refuses a refund based on a stale balance, so
   * a repeated or concurrent refund can never take more than was paid. A
   * payment found forged can be refunded too (that is how a forgery is undone);
   * it stays FORGERY_SUSPECTED.
   */
  async refund(ctx: Ctx, input: RefundInput): Promise<Payment> {
    const merchantUid = checkUid("merchantUid", input.merchantUid);
    const reason = checkText("reason", input.reason, 200);
    const payment = await ctx.em.findOne(Payment, { merchantUid });
    if (!payment) throw new NotFoundError(`Payment ${merchantUid}`);
    const refundableStatus =
      payment.status === PaymentStatus.PAID || (payment.status === PaymentStatus.FORGERY_SUSPECTED && payment.paidAmount != null);
    if (!refundableStatus || !payment.impUid) {
      throw new BadUserInputError("merchantUid", `only a PAID payment can be refunded (this one is ${payment.status})`);
    }
    const refundable = (payment.paidAmount ?? payment.amount) - payment.cancelledAmount;
    if (refundable <= 0) throw new BadUserInputError("merchantUid", "nothing is left to refund");
    let amount: number | undefined;
    if (input.amount !== undefined && input.amount !== null) {
      amount = checkAmount("amount", input.amount, this.deps.config.maxAmount);
      if (amount > refundable) throw new BadUserInputError("amount", `must not exceed the refundable balance of ${refundable}`);
    }
    await this.sendRefund(ctx, payment, { amount: amount ?? refundable, balance: refundable, reason });
    return payment;
  }

  /**
   * The one refund call: `amount` of a PAID payment (imp_uid known) whose
   * refundable balance this server expects to be `balance` (Iamport's
   * checksum refuses the refund when it is not), with the tax-free and VAT
   * parts in proportion (domain/tax.ts refundParts), and Iamport's answer
   * recorded with its payment.refunded event. `claimed`: the refund was
   * claimed earlier (a cancellation's) and may already have been made by an
   * attempt whose answer was lost: a refusal that finds the balance already
   * lower by `amount` is that refund, recorded, not an error.
   */
  async sendRefund(ctx: Ctx, payment: Payment, refund: { amount: number; balance: number; reason: string; claimed?: boolean }): Promise<void> {
    const { amount, balance, reason } = refund;
    const merchantUid = payment.merchantUid;
    const impUid = payment.impUid!;
    const paid = payment.paidAmount ?? payment.amount;
    const cancelledBefore = paid - balance;
    const parts = refundParts(payment, paid, cancelledBefore, amount);
    const made = () => payment.cancelledAmount >= cancelledBefore + amount;
    let ip: ProviderPayment;
    const askedAt = new Date();
    try {
      ip = await this.deps.provider.cancel(
        {
          impUid,
          merchantUid,
          // The whole balance is sent without an amount, as a full cancel.
          amount: amount === balance ? undefined : amount,
          cancellable: balance,
          reason,
          ...(parts.taxFree > 0 ? { taxFree: parts.taxFree } : {}),
          ...(parts.vat !== null ? { vat: parts.vat } : {}),
        },
        { requestId: ctx.requestId },
      );
    } catch (err) {
      if (err instanceof IamportRefusedError) {
        // Refresh our view: the balance may have changed elsewhere (console refund), or by this claim's earlier attempt.
        await this.refresh(ctx, payment, impUid).catch(() => undefined);
        if (refund.claimed && made()) return;
        throw new ConflictError(`${err.provider} refused the refund: ${err.iamportMessage}`);
      }
      if (!outcomeUnknown(err)) throw upstreamError(err, "refund");
      // The answer was lost: ask Iamport. Thanks to the checksum, a balance that
      // dropped by exactly the requested amount is this refund.
      ctx.log.warn({ merchantUid, err: (err as Error).message }, "refund outcome unknown; asking Iamport");
      const refreshed = await this.refresh(ctx, payment, impUid).then(
        () => true,
        () => false,
      );
      if (refreshed && (refund.claimed ? made() : payment.cancelledAmount === cancelledBefore + amount)) {
        ctx.log.info({ merchantUid, refunded: amount, status: payment.status }, "refund recorded");
        return;
      }
      throw new UpstreamUnavailableError(
        `${this.deps.provider.label} did not confirm the refund of ${merchantUid}; query the payment before trying again (a repeated refund is refused by the checksum)`,
        { cause: err },
      );
    }
    await this.record(ctx, payment, ip, askedAt);
    ctx.log.info({ merchantUid, refunded: amount, status: payment.status }, "refund recorded");
  }

  /** Re-reads one payment (by its imp_uid) from Iamport and applies it. */
  private async refresh(ctx: Ctx, payment: Payment, impUid: string): Promise<void> {
    const askedAt = new Date();
    const ip = await this.deps.provider.getPayment(impUid, { requestId: ctx.requestId });
    await this.record(ctx, payment, ip, askedAt);
  }

  // ---- reading -----------------------------------------------------------------

  /** One order as a plain row (no entity: reads skip the unit of work). */
  async find(ctx: Ctx, by: { merchantUid?: string | null; impUid?: string | null }): Promise<PaymentView | null> {
    if (!by.merchantUid && !by.impUid) throw new BadUserInputError("merchantUid", "give merchantUid or impUid");
    // Validated like everything else: a value no uid can have (a NUL byte) would otherwise fail in SQL.
    const row = await findPayment(ctx, {
      merchantUid: by.merchantUid ? checkUid("merchantUid", by.merchantUid) : undefined,
      impUid: by.impUid ? checkUid("impUid", by.impUid) : undefined,
    });
    return row ? paymentView(row) : null;
  }

  /** Newest first, keyset-paginated by id; plain rows. */
  async list(ctx: Ctx, filter: PaymentFilter, first: number, after?: string | null): Promise<Page<PaymentView>> {
    const [page] = (await this.pages(ctx, filter, undefined, first, after)).values();
    return page;
  }

  /** The page `list` gives for each of these subscriptions (stored ids: a list's rows), in one statement. */
  listMany(ctx: Ctx, subscriptionIds: readonly string[], first: number, after?: string | null): Promise<Map<string, Page<PaymentView>>> {
    // Keyed by the ids given: no null key without a list not by subscription.
    return this.pages(ctx, {}, subscriptionIds, first, after) as Promise<Map<string, Page<PaymentView>>>;
  }

  /** `list`'s page for `filter`, or for each of `subscriptionIds`; keyed by subscription (null in a list not by subscription). */
  private async pages(
    ctx: Ctx,
    filter: PaymentFilter,
    subscriptionIds: readonly string[] | undefined,
    first: number,
    after: string | null | undefined,
  ): Promise<Map<string | null, Page<PaymentView>>> {
    const limit = checkFirst(first);
    const where: PaymentListFilter = {};
    if (filter.customerUid) where.customerUid = checkUid("customerUid", filter.customerUid);
    const bySubscription = subscriptionIds ?? (filter.subscriptionId ? [checkUid("subscriptionId", filter.subscriptionId)] : undefined);
    if (filter.status) where.status = filter.status;
    if (after !== undefined && after !== null) {
      const key = decodeCursor("after", after);
      // Payment keys are bigint ids: anything else was not made by this API (and would fail in SQL).
      if (!/^[1-9]\d{0,17}$/.test(key)) throw new BadUserInputError("after", "is not a cursor returned by this API");
      where.beforeId = key;
    }
    const rowsOf = new Map<string | null, PaymentView[]>((bySubscription ?? [null]).map((id) => [id, []]));
    if (rowsOf.size > 0) {
      for (const row of await listPayments(ctx, where, limit + 1, bySubscription)) rowsOf.get(row.listed_for)?.push(paymentView(row));
    }
    const out = new Map<string | null, Page<PaymentView>>();
    for (const [id, rows] of rowsOf) {
      const hasNextPage = rows.length > limit;
      const nodes = hasNextPage ? rows.slice(0, limit) : rows;
      out.set(id, { nodes, pageInfo: { hasNextPage, endCursor: nodes.length ? encodeCursor(nodes[nodes.length - 1].id) : null } });
    }
    return out;
  }

  private buyer(input: { buyerName?: string | null; buyerEmail?: string | null; buyerTel?: string | null }) {
    return {
      buyerName: optionalText("buyerName", input.buyerName, 100) ?? null,
      buyerEmail: optionalText("buyerEmail", input.buyerEmail, 200) ?? null,
      buyerTel: optionalText("buyerTel", input.buyerTel, 40) ?? null,
    };
  }
}

/** The `again` request of a payment row: always its own merchant_uid, so a repeat cannot charge twice. */
export function againRequest(payment: Payment, noticeUrl?: string): ChargeRequest {
  return {
    customerUid: payment.customerUid!,
    merchantUid: payment.merchantUid,
    amount: payment.amount,
    name: payment.name,
    buyerName: payment.buyerName ?? undefined,
    buyerEmail: payment.buyerEmail ?? undefined,
    buyerTel: payment.buyerTel ?? undefined,
    noticeUrl,
    ...taxFields(payment),
  };
}


/** What reads return: the fields of a Payment that GraphQL shows, as a plain object. */
export type PaymentView = Pick<
  Payment,
  | "id"
  | "merchantUid"
  | "impUid"
  | "customerUid"
  | "name"
  | "amount"
  | "paidAmount"
  | "cancelledAmount"
  | "taxFreeAmount"
  | "vatAmount"
  | "currency"
  | "status"
  | "failReason"
  | "scheduledAt"
  | "paidAt"
  | "failedAt"
  | "cancelledAt"
  | "receiptUrl"
  | "createdAt"
  | "updatedAt"
> & { subscription: { id: string } | null };

export function paymentView(r: PaymentViewRow): PaymentView {
  return {
    id: r.id,
    merchantUid: r.merchant_uid,
    impUid: r.imp_uid,
    customerUid: r.customer_uid,
    name: r.name,
    amount: r.amount,
    paidAmount: r.paid_amount,
    cancelledAmount: r.cancelled_amount,
    taxFreeAmount: r.tax_free_amount,
    vatAmount: r.vat_amount,
    currency: r.currency,
    status: r.status,
    failReason: r.fail_reason,
    scheduledAt: r.scheduled_at,
    paidAt: r.paid_at,
    failedAt: r.failed_at,
    cancelledAt: r.cancelled_at,
    receiptUrl: r.receipt_url,
    subscription: r.subscription_id === null ? null : { id: r.subscription_id },
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function checkFirst(first: number | null | undefined): number {
  const n = first ?? 20;
  if (!Number.isInteger(n) || n < 1) throw new BadUserInputError("first", "must be a positive whole number");
  if (n > MAX_PAGE) throw new BadUserInputError("first", `must be at most ${MAX_PAGE}`);
  return n;
}
