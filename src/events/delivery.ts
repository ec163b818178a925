import http from "node:http";
import https from "node:https";
import type { MikroORM } from "@mikro-orm/postgresql";
import type { Logger } from "pino";
import type { EventsConfig } from "../config";
import { query } from "../db/tx";
import type { Metrics } from "../metrics";
import { eventPayload, type EventRow } from "./views";
import { signatureHeaders } from "./signing";
import { safeLookup } from "./ssrf";

/** The most of an endpoint's answer kept as lastError. */
const ERROR_TEXT_MAX = 300;
/** How often every process looks for due deliveries no notification announced: a crashed process's expired lease, another process's retry. */
const SWEEP_MS = 10_000;
/**
 * The least time between the starts of two turns of a worker (a turn: one
 * write of outcomes, one claim). During a burst every commit wakes the
 * worker; with turns apart, the wakes and finished attempts of that time
 * gather, and one claim and one write serve many deliveries. A wake after a
 * quiet spell starts a turn at once.
 */
const TURN_MS = 100;
/** The wait after a claim or a write of outcomes failed (the database unreachable) before the next try. */
const FAILURE_PAUSE_MS = 1000;

interface Claimed {
  id: string;
  attempts: number;
  round_start: number;
  order_key: string | null;
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

/** An attempt's outcome, waiting to be written with the others that ended meanwhile. */
interface Outcome {
  d: Claimed;
  result: AttemptResult;
  status: "DELIVERED" | "FAILED" | "PENDING";
  /** Seconds until the next attempt (status PENDING: a retry). */
  delay: number | null;
  error: string | null;
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
 * One turn's statement. First it writes the outcomes of attempts that ended,
 * one row each, and frees their lease: DELIVERED, FAILED, or PENDING again
 * with the next attempt's time; a row whose attempt count moved on (its
 * lease expired and another process took it over) keeps the newer attempt's
 * state. Then it claims at most `limit` due deliveries an attempt may start
 * on now and takes their lease: pending, due, not leased by any process (or
 * its lease expired: the process died mid-attempt), and no earlier event of
 * the same order key still pending for the endpoint (ordered delivery: only
 * the head of each order key is claimable, whoever holds it; the statement
 * sees the rows as they were before its own writes, so the next event of an
 * order key settled here is claimed by the next turn). Processes claiming at
 * once skip each other's rows (SKIP LOCKED); a row claimed meanwhile is
 * checked again on its new version and left out, its lease being taken.
 * Answers one row: the ids written and the deliveries claimed.
 */
const TURN = `with r as (
  update "event_deliveries" d
     set "status" = r."status", "leased_until" = null,
         "next_attempt_at" = case when r."status" = 'PENDING' then now() + make_interval(secs => r."delay") end,
         "delivered_at" = case when r."status" = 'DELIVERED' then now() else d."delivered_at" end,
         "last_status_code" = r."code", "last_error" = r."error", "updated_at" = now()
    from unnest(?::uuid[], ?::int[], ?::text[], ?::int[], ?::int[], ?::text[]) as r("id", "attempts", "status", "delay", "code", "error")
   where d."id" = r."id" and d."attempts" = r."attempts" and d."status" = 'PENDING'
  returning d."id"
), c as (
  update "event_deliveries" d set "leased_until" = now() + make_interval(secs => ?), "attempts" = d."attempts" + 1, "updated_at" = now()
   where d."id" in (
     select q."id" from "event_deliveries" q
      where q."status" = 'PENDING' and q."next_attempt_at" <= now()
        and (q."leased_until" is null or q."leased_until" < now())
        and q."id" <> all(?::uuid[])
        and not exists (select 1 from "event_deliveries" p
                         where p."endpoint_id" = q."endpoint_id" and p."order_key" = q."order_key"
                           and p."event_id" < q."event_id" and p."status" = 'PENDING')
      order by q."next_attempt_at", q."event_id" limit ? for update skip locked)
  returning d.*
)
select (select coalesce(array_agg(r."id"::text), '{}') from r) as "written",
       (select coalesce(json_agg(json_build_object(
                 'id', c."id", 'attempts', c."attempts", 'round_start', c."round_start", 'order_key', c."order_key",
                 'url', w."url", 'secret', w."secret", 'previous_secret', w."previous_secret",
                 'previous_secret_valid', coalesce(w."previous_secret_expires_at" > now(), false),
                 'event', json_build_object('id', e."id"::text, 'type', e."type", 'customer_uid', e."customer_uid", 'subscription_id', e."subscription_id",
                                            'merchant_uid', e."merchant_uid", 'data', e."data", 'created_at', e."created_at"))), '[]')
          from c join "webhook_endpoints" w on w."id" = c."endpoint_id" join "events" e on e."id" = c."event_id") as "claimed"`;

/**
 * Sends events to the merchant's endpoints. The delivery rows
 * (event_deliveries) are the queue, worked by every process: a worker claims
 * due deliveries with one statement (their lease: one attempt per event and
 * endpoint at a time, across processes; ordered per subscription), makes the
 * attempts, and writes the outcomes that ended meanwhile with one statement,
 * so a burst of events costs a few statements per batch, not per event. A
 * process that dies mid-attempt leaves its lease to expire; any process then
 * claims the delivery again. Payments never wait for any of this: recording
 * an event is one insert in their transaction.
 */
export class DeliveryWorker {
  private stopping = false;
  private loop?: Promise<void>;
  /** Ends the worker's wait, when it waits. */
  private wakeLoop?: () => void;
  private sweepTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private retryAt = Infinity;
  private inFlight = new Set<Promise<void>>();
  private outcomes: Outcome[] = [];
  /** Whether a claim may find a delivery: set by wakes, by settled deliveries (their order key's next) and by a claim that took all it was allowed. */
  private claimWanted = true;

  constructor(
    private readonly orm: MikroORM,
    private readonly config: EventsConfig,
    private readonly logger: Logger,
    private readonly metrics?: Metrics,
  ) {}

  start(): void {
    this.loop = this.work().catch((err: Error) => this.logger.error({ err: err.message }, "event delivery loop ended"));
    this.sweepTimer = setInterval(() => this.wake(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  /** Deliveries may be due: an event was recorded (by any process: NOTIFY), one was redelivered, a retry's time came, or the periodic look. */
  wake(): void {
    if (this.stopping) return;
    this.claimWanted = true;
    this.poke();
  }

  private poke(): void {
    const w = this.wakeLoop;
    this.wakeLoop = undefined;
    w?.();
  }

  /**
   * Turns: one statement writes the outcomes that ended and claims as many
   * due deliveries as there are free attempts, which start; then, with
   * nothing left to do, the worker waits to be woken (a wake, an attempt
   * ending). Turns start TURN_MS apart at the least.
   */
  private async work(): Promise<void> {
    let turnAt = 0;
    while (!this.stopping) {
      const early = turnAt + TURN_MS - Date.now();
      if (early > 0) await new Promise((resolve) => setTimeout(resolve, early));
      turnAt = Date.now();
      const failed = !(await this.turn(true));
      if (this.stopping) break;
      const ready = this.outcomes.length > 0 || (this.claimWanted && this.inFlight.size < this.config.deliveryConcurrency);
      if (!ready || failed) {
        await new Promise<void>((resolve) => {
          const t = failed ? setTimeout(resolve, FAILURE_PAUSE_MS) : undefined;
          this.wakeLoop = () => {
            if (t) clearTimeout(t);
            resolve();
          };
        });
        this.wakeLoop = undefined;
      }
    }
    await Promise.allSettled([...this.inFlight]);
    for (let tries = 0; this.outcomes.length > 0 && tries < 3; tries++) await this.turn(false);
  }

  /**
   * Writes the outcomes gathered so far and, when `claim` and a claim may
   * find something, claims deliveries for the free attempts and starts them:
   * one statement. False when it failed (the outcomes are kept for the next
   * turn).
   */
  private async turn(claim: boolean): Promise<boolean> {
    const free = this.config.deliveryConcurrency - this.inFlight.size;
    const limit = claim && this.claimWanted ? Math.max(0, free) : 0;
    if (limit === 0 && this.outcomes.length === 0) return true;
    const batch = this.outcomes.splice(0);
    if (limit > 0) this.claimWanted = false;
    let row: { written: string[]; claimed: Claimed[] };
    try {
      const ids = batch.map((o) => o.d.id);
      [row] = await query<{ written: string[]; claimed: Claimed[] }>({ em: this.orm.em }, TURN, [
        ids,
        batch.map((o) => o.d.attempts),
        batch.map((o) => o.status),
        batch.map((o) => o.delay),
        batch.map((o) => o.result.statusCode ?? null),
        batch.map((o) => o.error),
        Math.ceil(this.config.deliveryTimeoutMs / 1000) + 30,
        ids,
        limit,
      ]);
    } catch (err) {
      this.outcomes.unshift(...batch);
      if (limit > 0) this.claimWanted = true;
      this.logger.warn({ err: (err as Error).message, outcomes: batch.length }, "event deliveries: could not record outcomes or claim");
      return false;
    }
    const written = new Set(row.written);
    for (const o of batch) {
      if (!written.has(o.d.id)) continue;
      this.report(o);
      if (o.status === "PENDING") this.retryIn(o.delay!);
      // Settled: the next pending event of its order key may go now (the next turn claims it).
      else if (o.d.order_key) this.claimWanted = true;
    }
    for (const d of row.claimed) this.begin(d);
    // All it was allowed: more may be due once attempts end.
    if (limit > 0 && row.claimed.length === limit) this.claimWanted = true;
    return true;
  }

  /** Starts one attempt; its outcome joins those the worker writes next. */
  private begin(d: Claimed): void {
    const p: Promise<void> = this.send(d)
      .catch((err: Error): AttemptResult => ({ ok: false, error: err.message }))
      .then((result) => {
        this.outcomes.push(this.outcome(d, result));
        this.inFlight.delete(p);
        this.poke();
      });
    this.inFlight.add(p);
  }

  private async send(d: Claimed): Promise<AttemptResult> {
    const event = { ...d.event, created_at: new Date(d.event.created_at as unknown as string) };
    const body = JSON.stringify(eventPayload(event));
    const secrets = d.previous_secret && d.previous_secret_valid ? [d.secret, d.previous_secret] : [d.secret];
    const headers = signatureHeaders(`evt_${event.id}`, Math.floor(Date.now() / 1000), body, secrets);
    return this.post(d.url, headers, body);
  }

  private outcome(d: Claimed, result: AttemptResult): Outcome {
    const error = result.error ? result.error.slice(0, ERROR_TEXT_MAX) : null;
    if (result.ok) return { d, result, status: "DELIVERED", delay: null, error: null };
    const delay = nextDelaySeconds(this.config.retryScheduleSeconds, d.attempts - d.round_start);
    return { d, result, status: delay === null ? "FAILED" : "PENDING", delay, error };
  }

  private report({ d, result, status, delay, error }: Outcome): void {
    const fields = { delivery: d.id, event: d.event.id, type: d.event.type, status: result.statusCode, attempts: d.attempts };
    if (status === "DELIVERED") {
      this.metrics?.eventDeliveries.inc({ outcome: "delivered" });
      this.logger.info(fields, "event delivered");
    } else if (status === "FAILED") {
      this.metrics?.eventDeliveries.inc({ outcome: "failed" });
      this.logger.warn({ ...fields, url: d.url, err: error }, "event delivery failed: retries exhausted");
    } else {
      this.metrics?.eventDeliveries.inc({ outcome: "retry" });
      this.logger.info({ ...fields, url: d.url, err: error, retryInSeconds: delay }, "event delivery attempt failed; retrying");
    }
  }

  /** Wakes this process when a retry it wrote falls due (the earliest one pending; later ones are found by the claims after it, or by the sweep). */
  private retryIn(seconds: number): void {
    // A little after the time the database set, so the claim finds it due.
    const at = Date.now() + seconds * 1000 + 50;
    if (this.retryTimer && at >= this.retryAt) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryAt = at;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.retryAt = Infinity;
      this.wake();
    }, at - Date.now());
    this.retryTimer.unref();
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
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.poke();
    if (this.loop) await this.loop;
  }
}
