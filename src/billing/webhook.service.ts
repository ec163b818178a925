import { WebhookEvent } from "../db/entities";
import { AppError, BadUserInputError, NotFoundError, toAppError } from "../errors";
import type { Ctx } from "./context";
import type { PaymentService, Prefetched } from "./payment.service";
import type { BillingObservers, VerifiedPayment } from "./settlement";
import { checkUid, isUid } from "./validation";
import { insertInboxEvents, recordEventOutcomes, type EventOutcome } from "../db/repositories/webhook-events";
import { TurnBatcher, type Pending } from "../db/batch";

export type EventSource = "iamport-webhook" | "schedule-callback" | "mobile-redirect" | "complete" | "portone-webhook";

export interface Notice {
  impUid: string;
  merchantUid?: string;
  claimedStatus?: string;
  /** Cancellation notices name the cancellation (kept in the inbox for the record; the state comes from Iamport). */
  cancellationId?: string;
}

/** A recorded event: its row id and the imp_uid it names. */
export interface RecordedEvent {
  id: string;
  impUid?: string | null;
}

export type EventResult =
  | { kind: "verified"; event: RecordedEvent; result: VerifiedPayment }
  | { kind: "ignored"; event: RecordedEvent; reason: string }
  | { kind: "retry"; event: RecordedEvent; error: AppError };

/** An event to record, with the context of the request that received it. */
interface InboxRow {
  ctx: Ctx;
  source: EventSource;
  impUid: string;
  merchantUid: string | null;
  claimedStatus: string | null;
  body: string;
  remoteIp: string | null;
  receivedAt: Date;
}

/** Events inserted by one statement at most. */
const INBOX_BATCH = 64;

/**
 * A failure of the database to take a row of the batch: data (class 22),
 * integrity constraint (23) or an exception raised by a trigger (P0001).
 * The statement failed as a whole: nothing of the batch was written.
 */
function refusedRow(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "string" && (code.startsWith("22") || code.startsWith("23") || code === "P0001");
}

/**
 * The inbox: every webhook, schedule callback and browser return is recorded
 * first, then verified against Iamport. The body is a hint only; duplicate and
 * concurrent deliveries serialize on the payment row and act once.
 */
export class WebhookService {
  /**
   * The inbox's insert: the events received in one turn of the event loop
   * (a burst of webhooks) are inserted by one statement, committed before
   * any of them is processed.
   */
  private readonly inbox = new TurnBatcher<InboxRow, string>(INBOX_BATCH, (batch) => this.record(batch));

  /** The outcomes of the events processed in one turn, written by one statement. */
  private readonly outcomes = new TurnBatcher<{ ctx: Ctx; outcome: EventOutcome }, void>(INBOX_BATCH, async (batch) => {
    // On the caller's own manager, never the root one: the statement must not join a transaction the first caller's async context may carry.
    const write = (list: typeof batch) => recordEventOutcomes({ em: list[0].input.ctx.em }, list.map((p) => p.input.outcome));
    try {
      await write(batch);
      for (const p of batch) p.resolve();
    } catch (err) {
      if (batch.length === 1 || !refusedRow(err)) throw err;
      // A row the database refuses (bad data) fails its own webhook only.
      for (const p of batch) await write([p]).then(() => p.resolve(), p.reject);
    }
  });

  constructor(
    private readonly payments: PaymentService,
    private readonly observers: BillingObservers = {},
  ) {}

  /** Validates a webhook body (JSON or form): imp_uid required, merchant_uid and status optional hints. */
  parseNotice(body: unknown): Notice {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new BadUserInputError("body", "must be an object with imp_uid, merchant_uid and status");
    }
    const b = body as Record<string, unknown>;
    const str = (field: string): string | undefined => {
      const v = b[field];
      if (v === undefined || v === null || v === "") return undefined;
      if (typeof v !== "string") throw new BadUserInputError(field, "must be a string");
      return v;
    };
    const imp = str("imp_uid");
    if (!imp) throw new BadUserInputError("imp_uid", "is required");
    const impUid = checkUid("imp_uid", imp);
    const merchant = str("merchant_uid");
    const merchantUid = merchant === undefined ? undefined : checkUid("merchant_uid", merchant);
    const status = str("status");
    if (status !== undefined && status.length > 40) throw new BadUserInputError("status", "is too long");
    // Iamport's statuses are words; anything else (NUL, lone surrogates) could not even be stored.
    if (status !== undefined && !/^[\p{L}\p{N}_.:\- ]+$/u.test(status)) throw new BadUserInputError("status", "is not a payment status");
    // A record only, never acted on: a malformed one is left out rather than refusing the notice.
    const cancellation = b.cancellation_id;
    const cancellationId = typeof cancellation === "string" && isUid(cancellation) ? cancellation.trim() : undefined;
    return { impUid, merchantUid, claimedStatus: status, cancellationId };
  }

  /**
   * Records the notice, then verifies it. `claimMerchantUid`: the sender's
   * merchant_uid is checked against Iamport's (browser returns), instead of
   * being ignored as a mere hint (webhooks).
   */
  async handle(
    ctx: Ctx,
    source: EventSource,
    notice: Notice,
    meta: { remoteIp?: string; claimMerchantUid?: boolean; extra?: Record<string, unknown> },
  ): Promise<EventResult> {
    // Recorded and committed before anything is decided; Iamport is asked meanwhile (prefetch).
    const body = {
      imp_uid: notice.impUid,
      merchant_uid: notice.merchantUid,
      status: notice.claimedStatus,
      cancellation_id: notice.cancellationId,
      ...meta.extra,
    };
    const prefetched = this.payments.prefetch(ctx, notice.impUid);
    const id = await this.inbox.push({
      ctx,
      source,
      impUid: notice.impUid,
      merchantUid: notice.merchantUid ?? null,
      claimedStatus: notice.claimedStatus ?? null,
      body: JSON.stringify(body),
      remoteIp: meta.remoteIp?.slice(0, 64) ?? null,
      receivedAt: new Date(),
    });
    return this.process(ctx, { id, impUid: notice.impUid }, meta.claimMerchantUid ? notice.merchantUid : undefined, prefetched);
  }

  /**
   * Inserts a batch of events with one statement of its own (no unit of
   * work, so the events stay out of the verifications' flushes; committed at
   * once, as webhooks are received outside any transaction).
   * When the database refuses a row (bad data, a constraint, a trigger), each
   * event is inserted alone, so that one bad row cannot keep the others out
   * of the inbox. Any other failure (connection, pool) leaves the outcome
   * unknown: the whole batch fails, and Iamport delivers again, rather than
   * a second copy of events that may have been committed.
   */
  private async record(batch: Pending<InboxRow, string>[]): Promise<void> {
    const insert = async (list: Pending<InboxRow, string>[]) => {
      const ids = await insertInboxEvents(list[0].input.ctx, list.map((p) => p.input));
      this.observers.inboxBatch?.(list.length);
      // An event without a row (none today) is left unanswered: TurnBatcher rejects it.
      ids.forEach((id, i) => id !== undefined && list[i].resolve(id));
    };
    if (batch.length === 1) return insert(batch);
    try {
      await insert(batch);
    } catch (err) {
      if (!refusedRow(err)) throw err;
      batch[0].input.ctx.log.warn(
        { events: batch.length, requestIds: batch.map((p) => p.input.ctx.requestId), err: (err as Error).message },
        "inbox batch insert refused; inserting one by one",
      );
      await Promise.all(batch.map((p) => insert([p]).catch((e: unknown) => p.reject(e))));
    }
  }

  /** Processes a recorded event (first delivery or reconciliation of one left unprocessed). */
  async process(ctx: Ctx, event: RecordedEvent, claimedMerchantUid?: string, prefetched?: Prefetched): Promise<EventResult> {
    let result: EventResult;
    let outcome: string;
    let processed = true;
    try {
      const verified = await this.payments.verify(ctx, event.impUid!, claimedMerchantUid, prefetched);
      // The order's new status, or (when nothing was applied) the verdict and why.
      outcome = verified.applied ? verified.payment.status : `${verified.status}: ${verified.message}`;
      result = { kind: "verified", event, result: verified };
    } catch (err) {
      const e = toAppError(err);
      if (e instanceof NotFoundError || e.code === "BAD_USER_INPUT") {
        // Not ours (no such order or payment): durably known to be irrelevant.
        outcome = `ignored: ${e.message}`;
        result = { kind: "ignored", event, reason: e.message };
      } else {
        // Iamport unreachable or our own failure: leave it for a retry or reconciliation.
        outcome = `error: ${e.code}: ${e.message}`;
        processed = false;
        ctx.log.warn({ eventId: event.id, impUid: event.impUid, err: e.message, code: e.code }, "webhook not processed");
        if (e.code === "INTERNAL_SERVER_ERROR") ctx.log.error({ err }, "webhook processing failed");
        result = { kind: "retry", event, error: e };
      }
    }
    await this.outcomes.push({ ctx, outcome: { id: event.id, outcome: outcome.slice(0, 500), processedAt: processed ? new Date() : null } });
    return result;
  }

  /**
   * Records an event that needs no verification, with its outcome: a webhook
   * refused for its signature, one about a billing key, one of a type this
   * server does not act on. The audit trail keeps them beside the others.
   */
  async recordOnly(
    ctx: Ctx,
    e: { source: EventSource; merchantUid?: string | null; claimedStatus?: string | null; body: Record<string, unknown>; remoteIp?: string; outcome: string },
  ): Promise<void> {
    const event = ctx.em.create(WebhookEvent, {
      source: e.source,
      merchantUid: e.merchantUid ?? null,
      claimedStatus: e.claimedStatus?.slice(0, 40) ?? null,
      body: e.body,
      remoteIp: e.remoteIp?.slice(0, 64) ?? null,
      processedAt: new Date(),
      outcome: e.outcome.slice(0, 500),
    });
    await ctx.em.persistAndFlush(event);
  }

  /** Events recorded but never processed (the server died mid-way, or Iamport was down). */
  async pending(ctx: Ctx, olderThanSeconds: number, limit: number): Promise<WebhookEvent[]> {
    return ctx.em.find(
      WebhookEvent,
      {
        processedAt: null,
        receivedAt: { $lt: new Date(Date.now() - olderThanSeconds * 1000) },
        attempts: { $lt: 20 },
        impUid: { $ne: null },
      },
      { orderBy: { id: "asc" }, limit },
    );
  }
}
