import type { MikroORM } from "@mikro-orm/postgresql";
import perfHooks, { type IntervalHistogram, type PerformanceObserver } from "node:perf_hooks";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { BoundedProbe, DATABASE_PROBE_MS } from "./db/probe";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Prometheus metrics of one server instance (its own registry, so tests can run several servers). */
export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<"method" | "route" | "status">;
  graphqlDuration: Histogram<"operation" | "outcome">;
  iamportDuration: Histogram<"endpoint" | "result">;
  webhooks: Counter<"route" | "outcome">;
  renewals: Counter<"result">;
  retries: Counter<"result">;
  inboxBatch: Histogram;
  settlementBatch: Histogram;
  reconciliations: Counter<"result">;
  reconciledItems: Counter<"kind">;
  eventDeliveries: Counter<"outcome">;
  /** Stops what the default metrics keep running in the process (server close). */
  close(): void;
}

export function createMetrics(opts: { orm?: MikroORM; defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  const stopDefaultMetrics = opts.defaultMetrics !== false ? collectStoppableDefaultMetrics(registry) : () => {};
  const m: Metrics = {
    registry,
    close: stopDefaultMetrics,
    httpDuration: new Histogram({
      name: "billing_http_request_duration_seconds",
      help: "HTTP requests by method, route and status",
      labelNames: ["method", "route", "status"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    graphqlDuration: new Histogram({
      name: "billing_graphql_operation_duration_seconds",
      help: "GraphQL operations by operation name and outcome (ok or the first error code)",
      labelNames: ["operation", "outcome"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    iamportDuration: new Histogram({
      name: "billing_iamport_call_duration_seconds",
      help: "Iamport API calls by endpoint and result",
      labelNames: ["endpoint", "result"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    webhooks: new Counter({
      name: "billing_webhooks_total",
      help: "Webhooks and browser returns received, by route and outcome",
      labelNames: ["route", "outcome"],
      registers: [registry],
    }),
    renewals: new Counter({
      name: "billing_renewals_total",
      help: "Subscription charges settled, by result (paid, failed, forgery)",
      labelNames: ["result"],
      registers: [registry],
    }),
    inboxBatch: new Histogram({
      name: "billing_inbox_batch_size",
      help: "Webhook events recorded together by one insert (received in the same turn of the event loop)",
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    settlementBatch: new Histogram({
      name: "billing_settlement_batch_size",
      help: "Answers from Iamport (webhooks, verifications) settled together by one database transaction",
      buckets: [1, 2, 4, 8, 16, 32],
      registers: [registry],
    }),
    retries: new Counter({
      name: "billing_renewal_retries_total",
      help: "Dunning retries settled, by result",
      labelNames: ["result"],
      registers: [registry],
    }),
    reconciliations: new Counter({
      name: "billing_reconciliations_total",
      help: "Reconciliation runs by result (ok, errors, failed)",
      labelNames: ["result"],
      registers: [registry],
    }),
    reconciledItems: new Counter({
      name: "billing_reconciled_items_total",
      help: "Items settled by reconciliation, by kind",
      labelNames: ["kind"],
      registers: [registry],
    }),
    eventDeliveries: new Counter({
      name: "billing_event_deliveries_total",
      help: "Webhook delivery attempts to merchant endpoints, by outcome (delivered; retry: failed, retried later; failed: retries exhausted)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
  };

  if (opts.orm) {
    const orm = opts.orm;
    // A scrape waits at most DATABASE_PROBE_MS for the count; otherwise (database slow or gone) it shows the last one.
    const counts = new BoundedProbe(
      () => orm.em.fork().getConnection().execute<{ status: string; n: string }[]>(`select status, count(*) as n from subscriptions group by status`),
      DATABASE_PROBE_MS,
    );
    let lastCounts: { status: string; n: string }[] = [];
    new Gauge({
      name: "billing_subscriptions",
      help: "Subscriptions by status (the last count read when the database does not answer within a second)",
      labelNames: ["status"],
      registers: [registry],
      async collect() {
        const answer = await counts.ask();
        if (answer.ok) lastCounts = answer.value;
        this.reset();
        for (const r of lastCounts) this.set({ status: r.status }, Number(r.n));
      },
    });
    const backlog = new BoundedProbe(
      () =>
        orm.em
          .fork()
          .getConnection()
          .execute<{ n: string; oldest: number | null }[]>(
            `select count(*) as n, extract(epoch from now() - min(e."created_at"))::float8 as oldest
               from "event_deliveries" d join "events" e on e."id" = d."event_id" where d."status" = 'PENDING'`,
          ),
      DATABASE_PROBE_MS,
    );
    let lastBacklog = { n: 0, oldest: 0 };
    const readBacklog = async () => {
      const answer = await backlog.ask();
      if (answer.ok && answer.value[0]) lastBacklog = { n: Number(answer.value[0].n), oldest: Number(answer.value[0].oldest ?? 0) };
      return lastBacklog;
    };
    new Gauge({
      name: "billing_event_deliveries_pending",
      help: "Webhook deliveries not yet delivered nor failed (the delivery queue's depth)",
      registers: [registry],
      async collect() {
        this.set((await readBacklog()).n);
      },
    });
    new Gauge({
      name: "billing_event_oldest_undelivered_seconds",
      help: "Age of the oldest event with a delivery still pending (0 when none)",
      registers: [registry],
      async collect() {
        this.set((await readBacklog()).oldest);
      },
    });
    new Gauge({
      name: "billing_db_pool_connections",
      help: "Database pool connections by state (used, free, pending)",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const pool = (orm.em.getConnection().getKnex().client as { pool?: PoolLike }).pool;
        if (!pool) return;
        this.set({ state: "used" }, pool.numUsed());
        this.set({ state: "free" }, pool.numFree());
        this.set({ state: "pending" }, pool.numPendingAcquires());
      },
    });
  }
  return m;
}

/**
 * prom-client's default metrics, and a function that stops what they leave running: a GC PerformanceObserver and
 * an event-loop-delay histogram (a timer every 10 ms), which collectDefaultMetrics starts and offers no way to stop.
 * A process that starts and closes servers one after another (a test suite, the bench) would otherwise gather one
 * of each per server, and the observer, registered in Node itself, keeps its callback alive, with that server's
 * registry and every module loaded beside it. The two are caught as prom-client creates them, through the perf_hooks
 * functions it calls during this synchronous call, and the capture is undone before it returns.
 */
function collectStoppableDefaultMetrics(registry: Registry): () => void {
  const observers: PerformanceObserver[] = [];
  const histograms: IntervalHistogram[] = [];
  const hooks = perfHooks as { PerformanceObserver: typeof PerformanceObserver; monitorEventLoopDelay: typeof perfHooks.monitorEventLoopDelay };
  const { PerformanceObserver: Observer, monitorEventLoopDelay } = hooks;
  hooks.PerformanceObserver = class extends Observer {
    constructor(callback: ConstructorParameters<typeof PerformanceObserver>[0]) {
      super(callback);
      observers.push(this);
    }
  };
  hooks.monitorEventLoopDelay = (options) => {
    const histogram = monitorEventLoopDelay(options);
    histograms.push(histogram);
    return histogram;
  };
  try {
    collectDefaultMetrics({ register: registry, prefix: "billing_" });
  } finally {
    hooks.PerformanceObserver = Observer;
    hooks.monitorEventLoopDelay = monitorEventLoopDelay;
  }
  return () => {
    for (const o of observers.splice(0)) o.disconnect();
    for (const h of histograms.splice(0)) h.disable();
  };
}

interface PoolLike {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
}
