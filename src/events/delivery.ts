import http from "node:http";
import https from "node:https";
import type { MikroORM } from "@mikro-orm/postgresql";
import type PgBoss from "pg-boss";
import type { Logger } from "pino";
import type { EventsConfig } from "../config";
import { query } from "../db/tx";
import type { Metrics } from "../metrics";
import { eventPayload, type EventRow } from "./views";
import { signatureHeaders } from "./signing";
import { safeLookup } from "./ssrf";

export const DELIVERY_QUEUE = "event-delivery";

/** A delivery queued this long ago and still due (its job lost with a crashed process) is queued again. */
const REQUEUE_AFTER_SECONDS = 120;
/** The most of an endpoint's answer kept as lastError. */
const ERROR_TEXT_MAX = 300;

interface Claimed {
  id: string;
  attempts: number;
  round_start: number;
  order_key: string | null;
  endpoint_id: string;
  url: string;
  secret: string;
  previous_secret: string | null;
  previous_secret_valid: boolean;
  event: EventRow;
}

export interface AttemptResult {
  ok: boolean;
  statusCode?: number;
  error?: string;
}

/**
 * The wait before the next attempt after `attemptsInRound` failed ones, or
 * null when the schedule is exhausted (the delivery is then FAILED). Jitter:
 * 0.8 to 1.2 times the scheduled wait, so endpoints that failed together are
 * not retried together. Exported for its unit test.
 */
export function nextDelaySeconds(schedule: number[], attemptsInRound: number, random: () => number = Math.random): number | null {
  if (attemptsInRound > schedule.length) return null;
  const base = schedule[attemptsInRound - 1];
  return Math.max(1, Math.round(base * (0.8 + 0.4 * random())));
}

/**
 * Sends events to the merchant's endpoints through the pg-boss queue
 * DELIVERY_QUEUE: one job per attempt, worked by every process. A delivery row
 * (event_deliveries) is the truth: an attempt first takes its lease (one
 * attempt per event and endpoint at a time, whichever process holds the
 * job), and is not taken while an earlier event of the same subscription is
 * still pending for the endpoint (ordered delivery). Payments never wait for
 * any of this: recording an event is one insert in their transaction.
 */
export class DeliveryWorker {
  private stopping = false;
  private loop?: Promise<void>;
  private wakeLoop?: () => void;
  private sweepTimer?: NodeJS.Timeout;
  private inFlight = new Set<Promise<void>>();
  private enqueuing?: Promise<void>;
  private enqueueAgain = false;

  constructor(
    private readonly orm: MikroORM,
    private readonly boss: PgBoss,
    private readonly config: EventsConfig,
    private readonly logger: Logger,
    private readonly metrics?: Metrics,
  ) {}

  async start(): Promise<void> {
    const timeoutSeconds = Math.ceil(this.config.deliveryTimeoutMs / 1000);
    // A job whose process died mid-attempt expires and is retried; the row's lease decides whether it sends.
    const queue = { name: DELIVERY_QUEUE, policy: "standard", retryLimit: 5, retryDelay: 5, expireInSeconds: Math.max(60, timeoutSeconds * 3) } as const;
    await this.boss.createQueue(DELIVERY_QUEUE, queue);
    await this.boss.updateQueue(DELIVERY_QUEUE, queue);
    this.loop = this.work().catch((err: Error) => this.logger.error({ err: err.message }, "event delivery loop ended"));
    // What no notification announced (a job lost with a crashed process): looked for now and then.
    this.sweepTimer = setInterval(() => this.wake(), 10_000);
    this.sweepTimer.unref();
    this.wake();
  }

  /**
   * Queues a job for every delivery that is due and not queued yet. Called when
   * an event was recorded (by any process: NOTIFY) and periodically. Processes
   * woken together queue each delivery once: the rows are taken with SKIP LOCKED.
   */
  wake(): void {
    if (this.stopping) return;
    if (this.enqueuing) {
      this.enqueueAgain = true;
      return;
    }
    this.enqueuing = this.enqueueDue()
      .catch((err: Error) => this.logger.warn({ err: err.message }, "could not queue event deliveries"))
      .finally(() => {
        this.enqueuing = undefined;
        if (this.enqueueAgain) {
          this.enqueueAgain = false;
          this.wake();
        }
      });
  }

  private async enqueueDue(): Promise<void> {
    for (;;) {
      const rows = await query<{ id: string }>({ em: this.orm.em }, `update "event_deliveries" d set "enqueued_at" = now() where d."id" in (
           select "id" from "event_deliveries"
            where "status" = 'PENDING' and "next_attempt_at" <= now()
              and ("enqueued_at" is null or "enqueued_at" < now() - make_interval(secs => ?))
              and ("leased_until" is null or "leased_until" < now())
            order by "next_attempt_at" limit 100 for update skip locked)
         returning d."id"`, [REQUEUE_AFTER_SECONDS]);
      if (rows.length === 0) return;
      await this.boss.insert(rows.map((r) => ({ name: DELIVERY_QUEUE, data: { id: r.id } })));
      this.wakeLoop?.();
      if (rows.length < 100) return;
    }
  }

  /** Takes jobs while fewer than deliveryConcurrency attempts are in flight; each attempt's outcome is awaited and recorded. */
  private async work(): Promise<void> {
    while (!this.stopping) {
      const free = this.config.deliveryConcurrency - this.inFlight.size;
      let jobs: PgBoss.Job<{ id: string }>[] = [];
      if (free > 0) {
        try {
          jobs = await this.boss.fetch<{ id: string }>(DELIVERY_QUEUE, { batchSize: free });
        } catch (err) {
          this.logger.warn({ err: (err as Error).message }, "event delivery queue: fetch failed");
        }
      }
      for (const job of jobs) {
        const p: Promise<void> = this.runJob(job).finally(() => {
          this.inFlight.delete(p);
          this.wakeLoop?.();
        });
        this.inFlight.add(p);
      }
      if (jobs.length > 0 && this.inFlight.size < this.config.deliveryConcurrency) continue;
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 500);
        this.wakeLoop = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeLoop = undefined;
    }
    await Promise.allSettled([...this.inFlight]);
  }

  private async runJob(job: PgBoss.Job<{ id: string }>): Promise<void> {
    try {
      await this.attempt(job.data.id);
      await this.boss.complete(DELIVERY_QUEUE, job.id);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, delivery: job.data.id }, "event delivery job failed");
      await this.boss.fail(DELIVERY_QUEUE, job.id, { message: (err as Error).message }).catch(() => undefined);
    }
  }

  /** One attempt of one delivery, if its lease is free, it is due and no earlier event of its order key is pending. */
  async attempt(deliveryId: string): Promise<void> {
    const leaseSeconds = Math.ceil(this.config.deliveryTimeoutMs / 1000) + 30;
    const [claimed] = await query<Claimed>({ em: this.orm.em }, `with c as (
         update "event_deliveries" d set "leased_until" = now() + make_interval(secs => ?), "attempts" = d."attempts" + 1, "updated_at" = now()
          where d."id" = ? and d."status" = 'PENDING' and d."next_attempt_at" <= now()
            and (d."leased_until" is null or d."leased_until" < now())
            and not exists (select 1 from "event_deliveries" p
                             where p."endpoint_id" = d."endpoint_id" and p."order_key" = d."order_key"
                               and p."event_id" < d."event_id" and p."status" = 'PENDING')
          returning d.*)
       select c."id", c."attempts", c."round_start", c."order_key", c."endpoint_id",
              w."url", w."secret", w."previous_secret", coalesce(w."previous_secret_expires_at" > now(), false) as "previous_secret_valid",
              json_build_object('id', e."id"::text, 'type', e."type", 'customer_uid', e."customer_uid", 'subscription_id', e."subscription_id",
                                'merchant_uid', e."merchant_uid", 'data', e."data", 'created_at', e."created_at") as "event"
         from c join "webhook_endpoints" w on w."id" = c."endpoint_id" join "events" e on e."id" = c."event_id"`, [leaseSeconds, deliveryId]);
    if (!claimed) return;
    const event = { ...claimed.event, created_at: new Date(claimed.event.created_at as unknown as string) };
    const body = JSON.stringify(eventPayload(event));
    const secrets = claimed.previous_secret && claimed.previous_secret_valid ? [claimed.secret, claimed.previous_secret] : [claimed.secret];
    const headers = signatureHeaders(`evt_${event.id}`, Math.floor(Date.now() / 1000), body, secrets);
    const result = await this.post(claimed.url, headers, body);
    await this.record(claimed, result);
  }

  private async record(d: Claimed, result: AttemptResult): Promise<void> {
    if (result.ok) {
      await query({ em: this.orm.em }, `update "event_deliveries" set "status" = 'DELIVERED', "delivered_at" = now(), "leased_until" = null, "next_attempt_at" = null,
                "last_status_code" = ?, "last_error" = null, "updated_at" = now() where "id" = ?`, [result.statusCode ?? null, d.id]);
      this.metrics?.eventDeliveries.inc({ outcome: "delivered" });
      this.logger.info({ delivery: d.id, event: d.event.id, type: d.event.type, status: result.statusCode, attempts: d.attempts }, "event delivered");
      await this.wakeNext(d);
      return;
    }
    const delay = nextDelaySeconds(this.config.retryScheduleSeconds, d.attempts - d.round_start);
    const error = result.error ? result.error.slice(0, ERROR_TEXT_MAX) : null;
    if (delay === null) {
      await query({ em: this.orm.em }, `update "event_deliveries" set "status" = 'FAILED', "leased_until" = null, "next_attempt_at" = null,
                "last_status_code" = ?, "last_error" = ?, "updated_at" = now() where "id" = ?`, [result.statusCode ?? null, error, d.id]);
      this.metrics?.eventDeliveries.inc({ outcome: "failed" });
      this.logger.warn({ delivery: d.id, event: d.event.id, url: d.url, status: result.statusCode, err: error, attempts: d.attempts }, "event delivery failed: retries exhausted");
      await this.wakeNext(d);
      return;
    }
    await query({ em: this.orm.em }, `update "event_deliveries" set "leased_until" = null, "next_attempt_at" = now() + make_interval(secs => ?),
              "enqueued_at" = now() + make_interval(secs => ?), "last_status_code" = ?, "last_error" = ?, "updated_at" = now() where "id" = ?`, [delay, delay, result.statusCode ?? null, error, d.id]);
    this.metrics?.eventDeliveries.inc({ outcome: "retry" });
    this.logger.info({ delivery: d.id, event: d.event.id, url: d.url, status: result.statusCode, err: error, retryInSeconds: delay }, "event delivery attempt failed; retrying");
    await this.boss.send(DELIVERY_QUEUE, { id: d.id }, { startAfter: delay });
  }

  /** Once a delivery is settled, the next pending one of its order key may go: its job is queued. */
  private async wakeNext(d: Claimed): Promise<void> {
    if (!d.order_key) return;
    const [next] = await query<{ id: string }>({ em: this.orm.em }, `update "event_deliveries" set "enqueued_at" = now() where "id" = (
         select "id" from "event_deliveries" where "endpoint_id" = ? and "order_key" = ? and "status" = 'PENDING'
          order by "event_id" limit 1) and "next_attempt_at" <= now() returning "id"`, [d.endpoint_id, d.order_key]);
    if (next) await this.boss.send(DELIVERY_QUEUE, { id: next.id });
  }

  /** POSTs the body; any 2xx is success. Redirects are not followed (they could lead anywhere). */
  private post(url: string, headers: Record<string, string>, body: string): Promise<AttemptResult> {
    return new Promise((resolve) => {
      const target = new URL(url);
      const lib = target.protocol === "https:" ? https : http;
      let settled = false;
      const done = (r: AttemptResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const req = lib.request(
        target,
        {
          method: "POST",
          headers: { ...headers, "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), "user-agent": "billing-server-webhooks" },
          lookup: safeLookup(this.config.allowPrivateUrls),
          agent: false,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            if (text.length < ERROR_TEXT_MAX) text += chunk;
          });
          res.on("end", () => done(status >= 200 && status < 300 ? { ok: true, statusCode: status } : { ok: false, statusCode: status, error: `HTTP ${status}${text ? `: ${text}` : ""}` }));
          res.on("error", (err) => done({ ok: false, statusCode: status, error: err.message }));
        },
      );
      const timer = setTimeout(() => {
        done({ ok: false, error: `no answer within ${this.config.deliveryTimeoutMs} ms` });
        req.destroy();
      }, this.config.deliveryTimeoutMs);
      req.on("error", (err) => done({ ok: false, error: err.message }));
      req.end(body);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.wakeLoop?.();
    if (this.enqueuing) await this.enqueuing;
    if (this.loop) await this.loop;
  }
}
