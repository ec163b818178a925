import { setMaxListeners } from "node:events";
import http from "node:http";
import https from "node:https";
import { setTimeout as sleep } from "node:timers/promises";

/*
 * Webhook delivery as Iamport does it: POST {imp_uid, merchant_uid, status}
 * as JSON or as a form, once by default, optionally retried on network errors
 * and 5xx. Deliveries go out concurrently up to a limit, and every one is
 * tracked so that close() can abort them and a clock advance can wait for them.
 */

export type WebhookStatus = "ready" | "paid" | "failed" | "cancelled";

export interface WebhookBody {
  imp_uid: string;
  merchant_uid: string;
  status: WebhookStatus;
  /** On cancellation notices only: the cancellation it reports (its `cancel_history` entry). */
  cancellation_id?: string;
}

export interface WebhookJob {
  /** The payment's notice_url; null falls back to the emulator's webhook URL at send time. */
  noticeUrl: string | null;
  body: WebhookBody;
  /** What caused it, for the delivery log. */
  source: "payment" | "schedule" | "checkout" | "vbank" | "redeliver" | "cancel";
}

export type WebhookOutcome = "delivered" | "failed" | "dropped";

export interface WebhookLogEntry {
  id: number;
  url: string;
  content_type: "json" | "form";
  body: WebhookBody;
  source: WebhookJob["source"];
  outcome: WebhookOutcome;
  attempts: number;
  status_code: number | null;
  error: string | null;
  /** Emulator clock when it was sent. */
  sent_at: number;
}

export interface WebhookCounts {
  delivered: number;
  failed: number;
  dropped: number;
}

export interface WebhookSenderOptions {
  url: string | undefined;
  contentType: "json" | "form";
  retries: number;
  retryIntervalMs: number;
  concurrency: number;
  timeoutMs: number;
  now: () => number;
  /** Consumes a drop_webhook fault; true means "do not send this one". */
  shouldDrop: () => boolean;
  logger: { warn(...a: unknown[]): void };
}

const LOG_LIMIT = 1000;

interface AttemptResult {
  statusCode: number | null;
  error: string | null;
}

export class WebhookSender {
  private url: string | undefined;
  private readonly abort = new AbortController();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent = new https.Agent({ keepAlive: true });
  private readonly logEntries: WebhookLogEntry[] = [];
  private nextId = 1;

  constructor(private readonly opts: WebhookSenderOptions) {
    this.url = opts.url;
    // Every in-flight delivery listens on this one signal; thousands at once are expected.
    setMaxListeners(0, this.abort.signal);
  }

  setUrl(url: string | undefined): void {
    this.url = url;
  }

  hasUrl(): boolean {
    return Boolean(this.url);
  }

  log(): WebhookLogEntry[] {
    return this.logEntries.slice();
  }

  clearLog(): void {
    this.logEntries.length = 0;
  }

  /**
   * Delivers every job, at most `concurrency` at a time, and resolves once
   * each was delivered, failed (after its retries) or dropped. Jobs without
   * any URL are skipped: Iamport sends nothing when no URL is configured.
   */
  deliverAll(jobs: WebhookJob[], concurrency = this.opts.concurrency): Promise<WebhookCounts> {
    const counts: WebhookCounts = { delivered: 0, failed: 0, dropped: 0 };
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const outcome = await this.deliverOne(jobs[next++]);
        if (outcome) counts[outcome] += 1;
      }
    };
    const workers = Array.from({ length: Math.max(1, Math.min(concurrency, jobs.length)) }, worker);
    return this.track(Promise.all(workers).then(() => counts));
  }

  /** Fire and forget (webhooks caused by Iamport API calls must not delay their answer). */
  send(jobs: WebhookJob[]): void {
    if (jobs.length > 0) void this.deliverAll(jobs);
  }

  /** Aborts in-flight deliveries and retry waits, then closes pooled sockets. */
  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.inflight]);
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const forget = () => this.inflight.delete(p);
    p.then(forget, forget);
    return p;
  }

  private async deliverOne(job: WebhookJob): Promise<WebhookOutcome | null> {
    const url = job.noticeUrl || this.url;
    if (!url) return null;
    const entry: WebhookLogEntry = {
      id: this.nextId++,
      url,
      content_type: this.opts.contentType,
      body: job.body,
      source: job.source,
      outcome: "dropped",
      attempts: 0,
      status_code: null,
      error: null,
      sent_at: this.opts.now(),
    };
    this.record(entry);
    if (this.opts.shouldDrop()) return "dropped";

    const maxAttempts = 1 + this.opts.retries;
    for (;;) {
      entry.attempts += 1;
      const r = await this.attempt(url, job.body);
      entry.status_code = r.statusCode;
      entry.error = r.error;
      if (r.statusCode !== null && r.statusCode >= 200 && r.statusCode < 300) {
        entry.outcome = "delivered";
        return "delivered";
      }
      const retryable = r.statusCode === null || r.statusCode >= 500;
      if (!retryable || entry.attempts >= maxAttempts || this.abort.signal.aborted || r.error === "invalid URL") {
        entry.outcome = "failed";
        this.opts.logger.warn({ url, body: job.body, status: r.statusCode, error: r.error }, "webhook delivery failed");
        return "failed";
      }
      try {
        await sleep(this.opts.retryIntervalMs, undefined, { signal: this.abort.signal });
      } catch {
        entry.outcome = "failed";
        return "failed";
      }
    }
  }

  private record(entry: WebhookLogEntry): void {
    this.logEntries.push(entry);
    // Keep memory bounded when thousands of schedules run.
    if (this.logEntries.length > LOG_LIMIT) this.logEntries.splice(0, this.logEntries.length - LOG_LIMIT);
  }

  private attempt(rawUrl: string, body: WebhookBody): Promise<AttemptResult> {
    let url: URL;
    try {
      url = new URL(rawUrl);
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("unsupported protocol");
    } catch {
      return Promise.resolve({ statusCode: null, error: "invalid URL" });
    }
    const payload =
      this.opts.contentType === "form"
        ? Buffer.from(new URLSearchParams({ ...body }).toString())
        : Buffer.from(JSON.stringify(body));
    const contentType =
      this.opts.contentType === "form" ? "application/x-www-form-urlencoded" : "application/json; charset=utf-8";
    const isHttps = url.protocol === "https:";

    return new Promise<AttemptResult>((resolve) => {
      const req = (isHttps ? https : http).request(
        url,
        {
          method: "POST",
          agent: isHttps ? this.httpsAgent : this.httpAgent,
          signal: this.abort.signal,
          timeout: this.opts.timeoutMs,
          headers: {
            "content-type": contentType,
            "content-length": payload.length,
            "user-agent": "Iamport-Emulator-Webhook/1.0",
          },
        },
        (res) => {
          res.on("error", (e) => resolve({ statusCode: null, error: e.message }));
          res.on("end", () => resolve({ statusCode: res.statusCode ?? null, error: null }));
          res.resume();
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer within ${this.opts.timeoutMs} ms`)));
      req.on("error", (e) => resolve({ statusCode: null, error: e.message }));
      req.end(payload);
    });
  }
}
