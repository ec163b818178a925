import "reflect-metadata";
import crypto from "node:crypto";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";
import type { MikroORM } from "@mikro-orm/postgresql";
import type { Logger } from "pino";
import { createApp } from "./app";
import { ReconcileReport, ReconcileService } from "./billing/reconcile.service";
import type { BillingDeps, Ctx } from "./billing/context";
import { createServices, Services } from "./billing/services";
import { Config, configWarnings, describeSecrets } from "./config";
import { EmbeddedDatabase, startEmbeddedDatabase } from "./db/embedded";
import { checkPostgresVersion, migrate, openOrm } from "./db/orm";
import { PostgresRateLimitStore } from "./http/rate-limit-store";
import { IamportClient } from "./iamport/iamport.client";
import type { PaymentProvider } from "./provider/port";
import { IamportV1Provider } from "./provider/v1";
import { PortOneV2Provider } from "./provider/v2";
import { MigratingProvider } from "./provider/migration";
import { heldByV2Lookup } from "./db/repositories/provider-migration";
import { billingKeyLookup } from "./db/repositories/billing-keys";
import { createMetrics, Metrics } from "./metrics";
import { checkPortFree, databaseConnectError, listenError } from "./startup-checks";
import { Reconciler } from "./jobs/reconciler";
import { startBoss } from "./jobs/boss";
import { DeliveryWorker } from "./events/delivery";
import { EventsService } from "./events/events.service";
import { EventFeed } from "./events/live";
import { DEV_KEY_FILE, generateDevKey, inProcessEmulatorStateFile, loadOrCreateDevKey } from "./dev-state";
import { startupBlock } from "./startup-block";

export interface RunningServer {
  url: string;
  port: number;
  orm: MikroORM;
  services: Services;
  reconciler: Reconciler;
  /** The delivery of events to the merchant's webhook endpoints. */
  deliveries: DeliveryWorker;
  feed: EventFeed;
  /** The provider the billing core charges through (Iamport V1 or PortOne V2). */
  provider: PaymentProvider;
  /** The Iamport V1 client: present on V1 and in migration from V1 to V2. */
  iamport?: IamportClient;
  metrics: Metrics;
  /** Where the Iamport client points (the in-process emulator when no key is configured); unset on V2 outside migration. */
  iamportUrl?: string;
  /** Where the PortOne V2 adapter points, on V2. */
  portoneUrl?: string;
  /** The in-process emulator's base URL (its control API: clock, faults), when one was started. */
  emulatorUrl?: string;
  /** The keys accepted on /graphql (the generated one in development). */
  apiKeys: string[];
  /** What to print once ready, outside production: URLs, the development key, how to reset (see startup-block.ts). */
  readyText?: string;
  /** Settles once the start-up's background checks (cards the in-process emulator does not know) have logged. */
  checked: Promise<void>;
  close(): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  /** Use an Iamport (emulator) already running here instead of starting one in-process. */
  iamportUrl?: string;
  /**
   * Use PortOne V2 (emulator) already running here (PAYMENT_PROVIDER=v2): its API origin, webhook secret,
   * and the emulator control API's clock, which judges due schedules instead of this machine's.
   */
  portone?: { url: string; webhookSecret: string; clockUrl?: string };
  /** Embedded database in memory instead of config.pgliteDataDir (tests). */
  embeddedInMemory?: boolean;
}

/** Starts the database, Iamport (or the emulator), the HTTP server and reconciliation. */
export async function startServer(config: Config, opts: StartOptions): Promise<RunningServer> {
  const { logger } = opts;
  // Closed in reverse order, after the HTTP server has drained (see drainHttp).
  const closers: [string, () => Promise<void>][] = [];
  let drainHttp: (() => Promise<void>) | undefined;
  const closeAll = async () => {
    // First stop taking requests and answer those in flight: they still need Apollo, Iamport and the pool.
    if (drainHttp) await drainHttp();
    for (const [name, close] of closers.reverse()) {
      const started = Date.now();
      await close().catch((err) => logger.warn({ err: (err as Error).message, name }, "error while closing"));
      logger.debug({ name, ms: Date.now() - started }, "closed");
    }
  };
  let closing: Promise<void> | undefined;
  try {
    // The ports first: a clash is reported at once, naming the variable, before the embedded database opens.
    await checkPortFree("PORT", config.host, config.port);
    const v2 = config.provider === "v2";
    // The in-process emulator serves the chosen provider when it has no credentials (V2: its control API stays on V1's port).
    const inProcess = v2 ? config.portone.useEmulator && !opts.portone && !config.portone.apiUrl : config.iamport.useEmulator && !opts.iamportUrl && !config.iamport.apiUrl;
    if (inProcess) await checkPortFree("IAMPORT_EMULATOR_PORT", "127.0.0.1", config.emulator.port);
    if (inProcess && v2 && config.emulator.v2Port !== 0) await checkPortFree("PORTONE_EMULATOR_PORT", "127.0.0.1", config.emulator.v2Port);
    // Database: the configured PostgreSQL, or PGlite in-process behind a local socket.
    let databaseUrl = config.databaseUrl;
    let embedded: EmbeddedDatabase | undefined;
    if (!databaseUrl) {
      embedded = await startEmbeddedDatabase({ dataDir: opts.embeddedInMemory ? undefined : config.pgliteDataDir });
      closers.push(["embedded database", () => embedded!.close()]);
      databaseUrl = embedded.url;
      logger.info(
        { dataDir: opts.embeddedInMemory ? "memory" : config.pgliteDataDir },
        "DATABASE_URL is not set: using the embedded PostgreSQL (PGlite). Set DATABASE_URL for production.",
      );
    }
    const connectError = (err: unknown) => (embedded ? err : databaseConnectError(err, databaseUrl!));
    const orm = await openOrm(databaseUrl, embedded ? 1 : config.databasePoolMax, logger, config.databaseTimeouts).catch((err) => {
      throw connectError(err);
    });
    closers.push(["database pool", () => orm.close(true)]);
    await checkPostgresVersion(orm).catch((err) => {
      throw connectError(err);
    });
    if (config.migrateOnStart) {
      const applied = await migrate(orm);
      if (applied.length) logger.info({ applied }, "migrations applied");
    }

    // Iamport: the real API with credentials, or the emulator.
    let iamportUrl = opts.iamportUrl ?? config.iamport.apiUrl;
    let portone = opts.portone ?? (config.portone.apiUrl ? { url: config.portone.apiUrl, webhookSecret: config.portone.webhookSecret! } : undefined);
    let setEmulatorWebhook: ((url: string) => void) | undefined;
    let inProcessEmulator: { url: string; hasCustomer(customerUid: string): boolean } | undefined;
    if (inProcess) {
      const { startEmulator } = await import("#iamport-emulator");
      // A development server keeps the emulator's state in its embedded data directory, so a restart finds both.
      const stateFile = inProcessEmulatorStateFile(config, !!embedded && !opts.embeddedInMemory);
      const emulator = await startEmulator({
        port: config.emulator.port,
        apiKey: config.emulator.apiKey,
        apiSecret: config.emulator.apiSecret,
        stateFile,
        logger: logger.child({ component: "emulator" }),
        ...(v2 ? { v2: { port: config.emulator.v2Port, webhookSecret: config.emulator.v2WebhookSecret } } : {}),
      });
      closers.push(["emulator", () => emulator.close()]);
      iamportUrl = emulator.url;
      if (v2 && emulator.v2) {
        const v2emu = emulator.v2;
        portone = { url: v2emu.url, webhookSecret: v2emu.webhookSecret, clockUrl: `${emulator.url}/__emulator/clock` };
        setEmulatorWebhook = (url) => v2emu.setWebhookUrl(url);
        logger.info({ emulator: v2emu.url }, "PAYMENT_PROVIDER=v2 without PORTONE_API_SECRET: using the emulator's PortOne V2 API in-process (test cards only)");
      } else {
        setEmulatorWebhook = (url) => emulator.setWebhookUrl(url);
      }
      inProcessEmulator = emulator;
      logger.info(
        { emulator: emulator.url, stateFile: stateFile ?? "memory" },
        "IAMPORT_API_KEY is not set: using the Iamport emulator in-process (test cards only). Set IAMPORT_API_KEY and IAMPORT_API_SECRET for production.",
      );
    }
    const metrics = createMetrics({ orm });
    closers.push(["metrics", async () => metrics.close()]);
    const onCall = (endpoint: string, result: string, seconds: number) => metrics.iamportDuration.observe({ endpoint, result }, seconds);
    // V1's client serves V1, and the migration from it (which revokes V1's schedules).
    const iamport =
      !v2 || config.migration
        ? new IamportClient({
            onCall,
            baseUrl: iamportUrl!,
            apiKey: config.iamport.useEmulator ? config.emulator.apiKey : config.iamport.apiKey!,
            apiSecret: config.iamport.useEmulator ? config.emulator.apiSecret : config.iamport.apiSecret!,
            timeoutMs: config.iamport.timeoutMs,
            logger: logger.child({ component: "iamport" }),
            emulator: config.iamport.useEmulator,
          })
        : undefined;
    const portOne = () => {
      const clockUrl = portone!.clockUrl;
      const emulated = config.portone.useEmulator;
      return new PortOneV2Provider({
        baseUrl: portone!.url,
        apiSecret: emulated ? "portone_emulator_secret" : config.portone.apiSecret!,
        storeId: emulated ? "store-emulator" : config.portone.storeId,
        channelKey: emulated ? "channel-key-emulator" : config.portone.channelKey!,
        webhookSecret: portone!.webhookSecret,
        timeoutMs: config.iamport.timeoutMs,
        logger: logger.child({ component: "portone" }),
        keys: billingKeyLookup(orm),
        onCall,
        clock: clockUrl ? () => emulatorClock(clockUrl) : undefined,
      });
    };
    // In migration from V1, the charges migrate:v2 moved are asked about at V2, which holds them.
    const provider: PaymentProvider = v2
      ? portOne()
      : config.migration
        ? new MigratingProvider(new IamportV1Provider(iamport!), portOne(), heldByV2Lookup(orm))
        : new IamportV1Provider(iamport!);

    let apiKeys = config.apiKeys;
    let devKey: { key: string; file: string } | undefined;
    if (apiKeys.length === 0) {
      // Production refuses to start without API_KEYS. In development the key is kept in a file, so a
      // restart accepts the same one; elsewhere (tests) it lives as long as the process.
      if (config.env === "development") {
        const kept = loadOrCreateDevKey(DEV_KEY_FILE);
        devKey = { key: kept.key, file: displayPath(kept.file) };
        apiKeys = [kept.key];
        logger.warn({ file: devKey.file, created: kept.created }, "API_KEYS is not set: /graphql accepts the development key kept in this file (printed when ready)");
      } else {
        apiKeys = [generateDevKey()];
        logger.warn("API_KEYS is not set: /graphql accepts only a key generated for this process");
      }
    }
    let customerTokenSecret = config.customerTokenSecret;
    if (!customerTokenSecret) {
      // Development only (production refuses to start without it): tokens die with the process.
      customerTokenSecret = crypto.randomBytes(32).toString("base64url");
      logger.warn("CUSTOMER_TOKEN_SECRET is not set: customer tokens are signed with a per-process key and die with it");
    }
    logger.info({ secrets: describeSecrets(config) }, "configuration");
    for (const w of configWarnings(config)) logger.warn({ variable: w.variable }, `${w.variable} ${w.message}`);

    const services = createServices(
      { provider, config, logger },
      {
        subscriptionCharge(status, attempt) {
          const result = status === "PAID" ? "paid" : status === "FAILED" ? "failed" : status.toLowerCase();
          (attempt > 1 ? metrics.retries : metrics.renewals).inc({ result });
        },
        settlementBatch(size) {
          metrics.settlementBatch.observe(size);
        },
        inboxBatch(size) {
          metrics.inboxBatch.observe(size);
        },
      },
    );
    // One pg-boss per process: the reconciliation queue.
    const boss = await startBoss(orm, logger);
    closers.push(["pg-boss", () => boss.stop({ graceful: true, wait: true, timeout: 10_000 })]);
    const eventLog = logger.child({ component: "events" });
    const deliveries = new DeliveryWorker(orm, config.events, eventLog, metrics);
    const events = new EventsService(config.events, eventLog, () => deliveries.wake());
    const feed = new EventFeed(orm, { databaseUrl: embedded ? undefined : databaseUrl, logger: eventLog, onRecorded: () => deliveries.wake() });
    const rateLimitStore = config.rateLimitStore === "postgres" ? PostgresRateLimitStore.bound(orm) : undefined;
    let draining = false;
    const { app, apollo, live } = await createApp({
      config,
      orm,
      services,
      provider,
      logger,
      apiKeys,
      customerTokenSecret,
      rateLimitStore,
      metrics,
      events,
      feed,
      serverFactory: (handler) => {
        const server = http.createServer({ ServerResponse: drainAwareResponse(() => draining) }, handler);
        // Longer than the idle timeout of common load balancers (60 s), so they close idle connections first.
        server.keepAliveTimeout = 65_000;
        return server;
      },
    });
    closers.push(["apollo", () => apollo.stop()]);

    const server = app.server;
    await app.listen({ port: config.port, host: config.host }).catch((err: Error) => {
      throw listenError(err, "PORT", config.host, config.port);
    });
    drainHttp = async () => {
      // Every response not yet begun says Connection: close, so no client sends another request on its connection.
      draining = true;
      // Keep-alive connections idle now; later, those whose last response began before the drain.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const force = setTimeout(() => {
        logger.warn({ drainMs: config.shutdownDrainMs }, "requests still in flight after SHUTDOWN_DRAIN_MS: closing their connections");
        server.closeAllConnections();
      }, config.shutdownDrainMs);
      // Stop accepting; app.close() resolves once every connection has ended.
      const closed = app.close();
      logger.info({ drainMs: config.shutdownDrainMs }, "stopped accepting connections; finishing in-flight requests");
      // Live connections end now: an open WebSocket would keep the HTTP server from closing.
      await live?.close().catch((err: Error) => logger.warn({ err: err.message }, "error while closing live updates"));
      try {
        await closed;
      } finally {
        clearInterval(sweep);
        clearTimeout(force);
      }
    };
    const port = (server.address() as AddressInfo).port;
    if (!config.publicUrlExplicit) config.publicUrl = `http://localhost:${port}`;
    setEmulatorWebhook?.(v2 ? `${config.publicUrl}/portone-webhook` : (config.emulator.webhookUrl ?? `${config.publicUrl}/iamport-webhook`));

    await feed.start();
    closers.push(["event feed", () => feed.stop()]);
    deliveries.start();
    closers.push(["event deliveries", () => deliveries.stop()]);
    const reconciler = new Reconciler(orm, new MeteredReconcileService({ provider, config, logger }, services, metrics), logger, config.reconcileIntervalSeconds);
    await reconciler.start(boss);
    closers.push(["reconciler", () => reconciler.stop()]);

    const url = `http://localhost:${port}`;
    logger.info({ graphql: `${url}/graphql` }, "billing server listening");
    const readyText =
      config.env === "production"
        ? undefined
        : startupBlock({
            url,
            graphiqlEnabled: config.graphiqlEnabled,
            devKey,
            emulatorUrl: inProcessEmulator?.url,
            portoneEmulatorUrl: inProcessEmulator && v2 ? portone?.url : undefined,
            dataDir: embedded && !opts.embeddedInMemory ? config.pgliteDataDir : undefined,
          });
    // Not awaited: a slow or failed check never delays or fails the start.
    const checked = inProcessEmulator ? warnOfCardsUnknownToEmulator(orm, inProcessEmulator, logger, !!embedded && !opts.embeddedInMemory) : Promise.resolve();
    return {
      url,
      port,
      orm,
      services,
      reconciler,
      deliveries,
      feed,
      provider,
      iamport,
      metrics,
      iamportUrl: iamport ? iamportUrl : undefined,
      portoneUrl: v2 ? portone!.url : undefined,
      emulatorUrl: inProcessEmulator?.url,
      apiKeys,
      readyText,
      checked,
      close: () => (closing ??= closeAll()),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** The emulator's clock (its control API), which PortOne V2's own API does not tell. */
async function emulatorClock(url: string): Promise<number> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`the emulator's clock answered HTTP ${res.status}`);
  return ((await res.json()) as { now: number }).now;
}

/** A path under the working directory as ./relative (how the README names it), any other as it is. */
function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? `./${rel}` : file;
}

/**
 * The database keeps its cards across restarts; an in-process emulator whose
 * state was lost (memory only, a deleted or foreign state file) no longer
 * knows their billing keys, and every charge on them fails ("등록된
 * 고객정보가 없습니다"). One query and the emulator's own records find them.
 */
async function warnOfCardsUnknownToEmulator(
  orm: MikroORM,
  emulator: { hasCustomer(customerUid: string): boolean },
  logger: Logger,
  devReset: boolean,
): Promise<void> {
  try {
    const rows = await orm.em.fork().getConnection().execute<{ customer_uid: string; billing_key: string | null }[]>(
      `select customer_uid, billing_key from cards where status = 'ACTIVE'`,
    );
    // The emulator keeps V2's cards under the billing key it issued, V1's under the customer_uid.
    const unknown = rows.filter((r) => !emulator.hasCustomer(r.billing_key ?? r.customer_uid)).map((r) => r.customer_uid);
    if (unknown.length === 0) return;
    logger.warn(
      { cards: unknown.length, examples: unknown.slice(0, 5) },
      `the database holds ${unknown.length} ACTIVE card(s) the in-process Iamport emulator does not know: charges on them fail. ` +
        (devReset
          ? "Start both afresh: stop the server, then npm run dev:reset"
          : "The emulator's state was not kept with this database (IAMPORT_EMULATOR_STATE_FILE); register the cards again or use a fresh database"),
    );
  } catch (err) {
    logger.debug({ err }, "could not compare the database's cards with the emulator's");
  }
}

/**
 * Responses that add `Connection: close` while the server drains: the client
 * then opens no further request on that connection (which a shutdown would
 * reset), and Node closes the connection once the response is sent.
 */
function drainAwareResponse(isDraining: () => boolean): typeof http.ServerResponse {
  return class DrainAwareResponse extends http.ServerResponse {
    // Every response passes here: an explicit writeHead, or Node's implicit one at the first write.
    override writeHead(...args: unknown[]): this {
      if (isDraining() && !this.headersSent) this.setHeader("connection", "close");
      return super.writeHead(...(args as Parameters<http.ServerResponse["writeHead"]>));
    }
  } as typeof http.ServerResponse;
}

/** Reconciliation with its runs and settled items counted. */
class MeteredReconcileService extends ReconcileService {
  constructor(
    deps: BillingDeps,
    services: Services,
    private readonly metrics: Metrics,
  ) {
    super(deps, services);
  }

  override async runOnce(ctx: Ctx): Promise<ReconcileReport> {
    try {
      const report = await super.runOnce(ctx);
      this.metrics.reconciliations.inc({ result: report.errors > 0 ? "errors" : "ok" });
      for (const [kind, n] of Object.entries(report)) if (kind !== "errors" && typeof n === "number" && n > 0) this.metrics.reconciledItems.inc({ kind }, n);
      return report;
    } catch (err) {
      this.metrics.reconciliations.inc({ result: "failed" });
      throw err;
    }
  }
}
