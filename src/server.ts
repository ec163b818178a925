import "reflect-metadata";
import crypto from "node:crypto";
import http from "node:http";
import path from "node:path";
import { usePreparedStatements } from "./db/sql";
import type { AddressInfo } from "node:net";
import type { MikroORM } from "@mikro-orm/postgresql";
import type { Logger } from "pino";
import { createApp } from "./app";
import { ReconcileReport, ReconcileService } from "./billing/reconcile.service";
import type { BillingDeps, Ctx } from "./billing/context";
import { createServices, Services } from "./billing/services";
import { Config, describeSecrets } from "./config";
import { EmbeddedDatabase, startEmbeddedDatabase } from "./db/embedded";
import { checkPostgresVersion, migrate, openOrm } from "./db/orm";
import { PostgresRateLimitStore } from "./http/rate-limit-store";
import { IamportClient } from "./iamport/iamport.client";
import { createMetrics, Metrics } from "./metrics";
import { checkPortFree, databaseConnectError, listenError } from "./startup-checks";
import { Reconciler } from "./jobs/reconciler";

/** The in-process emulator's state file inside the embedded data directory (PostgreSQL ignores files it does not know there). */
export const EMULATOR_STATE_FILE = "iamport-emulator.json";

export interface RunningServer {
  url: string;
  port: number;
  orm: MikroORM;
  services: Services;
  reconciler: Reconciler;
  iamport: IamportClient;
  metrics: Metrics;
  /** Where the Iamport client points (the in-process emulator when no key is configured). */
  iamportUrl: string;
  /** The keys accepted on /graphql (the generated one in development). */
  apiKeys: string[];
  close(): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  /** Use an Iamport (emulator) already running here instead of starting one in-process. */
  iamportUrl?: string;
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
    if (config.iamport.useEmulator && !opts.iamportUrl && !config.iamport.apiUrl) await checkPortFree("IAMPORT_EMULATOR_PORT", "127.0.0.1", config.emulator.port);
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
    usePreparedStatements(!embedded && config.databasePreparedStatements, (err) =>
      logger.warn(
        { err: err.message },
        "PostgreSQL does not know this server's prepared statements by name (a pooler in transaction mode?): statements sent together carry their parameters inlined from now on",
      ),
    );
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
    let setEmulatorWebhook: ((url: string) => void) | undefined;
    if (config.iamport.useEmulator && !iamportUrl) {
      const { startEmulator } = await import("./emulator/emulator");
      // The emulator's keys and schedules belong with the database that refers to them: a development
      // server keeps them in its embedded data directory, so a restart finds both (delete the directory to reset both).
      const stateFile =
        config.emulator.stateFile ??
        (embedded && !opts.embeddedInMemory && config.env !== "test" ? path.join(path.resolve(config.pgliteDataDir), EMULATOR_STATE_FILE) : undefined);
      const emulator = await startEmulator({
        port: config.emulator.port,
        apiKey: config.emulator.apiKey,
        apiSecret: config.emulator.apiSecret,
        stateFile,
        logger: logger.child({ component: "emulator" }),
      });
      closers.push(["emulator", () => emulator.close()]);
      iamportUrl = emulator.url;
      setEmulatorWebhook = (url) => emulator.setWebhookUrl(url);
      logger.info(
        { emulator: emulator.url, stateFile: stateFile ?? "memory" },
        "IAMPORT_API_KEY is not set: using the Iamport emulator in-process (test cards only). Set IAMPORT_API_KEY and IAMPORT_API_SECRET for production.",
      );
    }
    const metrics = createMetrics({ orm });
    const iamport = new IamportClient({
      onCall: (endpoint, result, seconds) => metrics.iamportDuration.observe({ endpoint, result }, seconds),
      baseUrl: iamportUrl!,
      apiKey: config.iamport.useEmulator ? config.emulator.apiKey : config.iamport.apiKey!,
      apiSecret: config.iamport.useEmulator ? config.emulator.apiSecret : config.iamport.apiSecret!,
      timeoutMs: config.iamport.timeoutMs,
      logger: logger.child({ component: "iamport" }),
    });

    let apiKeys = config.apiKeys;
    if (apiKeys.length === 0) {
      const devKey = `dev_${crypto.randomBytes(18).toString("base64url")}`;
      apiKeys = [devKey];
      // Printed on purpose: it is a throw-away development key (production refuses to start without API_KEYS).
      logger.warn(`API_KEYS is not set: use this development key on /graphql: Authorization: Bearer ${devKey}`);
    }
    let customerTokenSecret = config.customerTokenSecret;
    if (!customerTokenSecret) {
      // Development only (production refuses to start without it): tokens die with the process.
      customerTokenSecret = crypto.randomBytes(32).toString("base64url");
      logger.warn("CUSTOMER_TOKEN_SECRET is not set: customer tokens are signed with a per-process key and die with it");
    }
    logger.info({ secrets: describeSecrets(config) }, "configuration");

    const services = createServices(
      { iamport, config, logger },
      {
        subscriptionCharge(status, attempt) {
          const result = status === "PAID" ? "paid" : status === "FAILED" ? "failed" : status.toLowerCase();
          (attempt > 1 ? metrics.retries : metrics.renewals).inc({ result });
        },
        renewalBatch(size) {
          metrics.renewalBatch.observe(size);
        },
        inboxBatch(size) {
          metrics.inboxBatch.observe(size);
        },
      },
    );
    const rateLimitStore = config.rateLimitStore === "postgres" ? PostgresRateLimitStore.bound(orm) : undefined;
    let draining = false;
    const { app, apollo } = await createApp({
      config,
      orm,
      services,
      iamport,
      logger,
      apiKeys,
      customerTokenSecret,
      rateLimitStore,
      metrics,
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
      try {
        await closed;
      } finally {
        clearInterval(sweep);
        clearTimeout(force);
      }
    };
    const port = (server.address() as AddressInfo).port;
    if (!config.publicUrlExplicit) config.publicUrl = `http://localhost:${port}`;
    setEmulatorWebhook?.(config.emulator.webhookUrl ?? `${config.publicUrl}/iamport-webhook`);

    const reconciler = new Reconciler(orm, new MeteredReconcileService({ iamport, config, logger }, services, metrics), logger, config.reconcileIntervalSeconds);
    await reconciler.start();
    closers.push(["reconciler", () => reconciler.stop()]);

    const url = `http://localhost:${port}`;
    logger.info({ graphql: `${url}/graphql` }, "billing server listening");
    return { url, port, orm, services, reconciler, iamport, metrics, iamportUrl: iamportUrl!, apiKeys, close: () => (closing ??= closeAll()) };
  } catch (err) {
    await closeAll();
    throw err;
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
