import { createHmac, randomBytes, randomUUID } from "node:crypto";

/*
 * PortOne V2 webhooks (body version 2024-04-25): JSON, signed as Standard
 * Webhooks are, so that a receiver verifies them with the `whsec_` secret
 * (for instance with @portone/server-sdk's Webhook.verify).
 */

export type V2WebhookType =
  | "Transaction.Paid"
  | "Transaction.Failed"
  | "Transaction.Cancelled"
  | "Transaction.PartialCancelled"
  | "BillingKey.Issued"
  | "BillingKey.Deleted";

export interface V2WebhookBody {
  type: V2WebhookType;
  timestamp: string;
  data: { storeId: string; paymentId?: string; transactionId?: string; cancellationId?: string; billingKey?: string };
}

export interface V2WebhookLogEntry {
  id: string;
  url: string;
  body: V2WebhookBody;
  outcome: "delivered" | "failed" | "dropped";
  status_code: number | null;
  error: string | null;
}

export interface V2WebhookSenderOptions {
  url: string | undefined;
  /** `whsec_` followed by base64 key bytes. */
  secret: string;
  timeoutMs: number;
  /** Consumes a drop_webhook fault; true means "do not send this one". */
  shouldDrop: () => boolean;
  logger: { warn(...a: unknown[]): void };
}

const LOG_LIMIT = 1000;

/** A fresh webhook secret in PortOne's format. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString("base64")}`;
}

/** The Standard Webhooks signature header value of one message. */
export function signWebhook(secret: string, id: string, timestamp: number, payload: string): string {
  const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret, "base64");
  const mac = createHmac("sha256", key).update(`${id}.${timestamp}.${payload}`).digest("base64");
  return `v1,${mac}`;
}

export class V2WebhookSender {
  private url: string | undefined;
  private readonly abort = new AbortController();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly entries: V2WebhookLogEntry[] = [];

  get secret(): string {
    return this.opts.secret;
  }

  constructor(private readonly opts: V2WebhookSenderOptions) {
    this.url = opts.url;
  }

  setUrl(url: string | undefined): void {
    this.url = url;
  }

  log(): V2WebhookLogEntry[] {
    return this.entries.slice();
  }

  clearLog(): void {
    this.entries.length = 0;
  }

  /**
   * Delivers each body once, in order, resolving when all were delivered,
   * failed or dropped. Every one is in the log before this returns, so a call
   * that caused webhooks answers after its log entries exist.
   */
  deliverAll(bodies: V2WebhookBody[]): Promise<{ delivered: number; failed: number; dropped: number }> {
    const url = this.url;
    const entries: V2WebhookLogEntry[] = url
      ? bodies.map((body) => ({ id: `msg_${randomUUID()}`, url, body, outcome: "dropped", status_code: null, error: null }))
      : [];
    this.entries.push(...entries);
    if (this.entries.length > LOG_LIMIT) this.entries.splice(0, this.entries.length - LOG_LIMIT);
    const run = (async () => {
      const counts = { delivered: 0, failed: 0, dropped: 0 };
      for (const entry of entries) counts[await this.deliverOne(entry)] += 1;
      return counts;
    })();
    this.inflight.add(run);
    const forget = () => this.inflight.delete(run);
    run.then(forget, forget);
    return run;
  }

  /** Fire and forget: webhooks caused by an API call never delay its answer. */
  send(bodies: V2WebhookBody[]): void {
    if (bodies.length > 0) void this.deliverAll(bodies);
  }

  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.inflight]);
  }

  private async deliverOne(entry: V2WebhookLogEntry): Promise<V2WebhookLogEntry["outcome"]> {
    const { id, url, body } = entry;
    if (this.opts.shouldDrop()) return "dropped";
    const payload = JSON.stringify(body);
    // The signed timestamp is real time, not the emulator's clock: receivers reject
    // signatures older than a few minutes, and a moved clock must not make them stale.
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "PortOne-Emulator-Webhook/1.0",
          "webhook-id": id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": signWebhook(this.opts.secret, id, timestamp, payload),
        },
        body: payload,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.timeoutMs)]),
      });
      await res.arrayBuffer();
      entry.status_code = res.status;
      entry.outcome = res.ok ? "delivered" : "failed";
    } catch (e) {
      entry.error = (e as Error).message;
      entry.outcome = "failed";
    }
    if (entry.outcome === "failed") this.opts.logger.warn({ url, type: body.type, status: entry.status_code, error: entry.error }, "V2 webhook delivery failed");
    return entry.outcome;
  }
}
