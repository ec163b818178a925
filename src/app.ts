import crypto from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ApolloServer } from "@apollo/server";
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginLandingPageDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from "@apollo/server/plugin/disabled";
import { expressMiddleware } from "@as-integrations/express5";
import type { EntityManager, MikroORM } from "@mikro-orm/postgresql";
import { ApolloArmor } from "@escape.tech/graphql-armor";
import cors from "cors";
import express, { Express } from "express";
import helmet from "helmet";
import type { Logger } from "pino";
import type { Ctx } from "./billing/context";
import type { Services } from "./billing/services";
import type { Config } from "./config";
import type { GraphQLContext } from "./graphql/context";
import { formatError } from "./graphql/errors";
import { IDEMPOTENCY_HEADER, idempotencyPlugin, REPLAYED_HEADER } from "./graphql/idempotency";
import { IdempotencyStore } from "./db/idempotency";
import { buildBillingSchema } from "./graphql/schema";
import { admitCaller, parseApiKeys, requireCaller } from "./http/auth";
import { graphqlEndpoint, type Middleware } from "./http/graphql-endpoint";
import { graphiqlRouter } from "./http/graphiql";
import { healthRoutes } from "./http/health";
import { fastRoute } from "./http/fast-routes";
import { bodyParsers, errorHandler, restRoutes, webhookHandler } from "./http/routes";
import { graphqlRateLimit, ipRateLimit, passThrough, precomputedHeaders, webhookAllowList } from "./http/security";
import type { IamportClient } from "./iamport/iamport.client";
import type { Metrics } from "./metrics";
import { CustomerTokenService } from "./security/customer-token.service";
import type { Store } from "express-rate-limit";

export interface AppDeps {
  config: Config;
  orm: MikroORM;
  services: Services;
  iamport: IamportClient;
  logger: Logger;
  /** The keys accepted on /graphql (config.apiKeys, or the generated development key). */
  apiKeys: string[];
  /** HS256 secret of customer tokens (config, or generated per process in development). */
  customerTokenSecret: string;
  /** Shared rate-limit store (several processes); undefined: in memory. */
  rateLimitStore?: () => Store;
  metrics: Metrics;
}

export interface BuiltApp {
  app: Express;
  apollo: ApolloServer<GraphQLContext>;
  /** What the node:http server runs: POST /graphql without Express in front, the rest through `app`. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

const KNOWN_ROUTES = [
  "/graphql",
  "/graphiql",
  "/iamport-webhook",
  "/iamport-callback/schedule",
  "/payments/complete/mobile",
  "/payments/complete",
  "/billings",
  "/subscriptions/issue-billing",
  "/subscription/issue-billing",
  "/healthz",
  "/readyz",
  "/metrics",
];
const WEBHOOK_ROUTES = new Set(["/iamport-webhook", "/iamport-callback/schedule", "/payments/complete/mobile", "/payments/complete"]);

const KNOWN_PREFIXES = KNOWN_ROUTES.map((r) => [r, `${r}/`] as const);

/** The middlewares that do something: a limit of 0 is passThrough, and costs nothing when left out. */
function mounted(...mws: unknown[]): Middleware[] {
  return mws.filter((m) => m !== passThrough) as Middleware[];
}

/** The path of a request URL, without its query. */
function pathOf(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

/** A bounded label for metrics: the known route, never the raw path (which callers control). */
function routeLabel(url: string): string {
  const path = pathOf(url);
  for (const [route, prefix] of KNOWN_PREFIXES) if (path === route || path.startsWith(prefix)) return route;
  return "other";
}

function webhookOutcome(status: number): string {
  if (status < 300) return "handled";
  if (status < 400) return "redirected";
  if (status === 429) return "rate_limited";
  if (status < 500) return "rejected";
  return "retry";
}

/** Builds the express app: request context, REST routes, /graphql, errors. Starts nothing. */
export async function createApp(deps: AppDeps): Promise<BuiltApp> {
  const { config, services, logger } = deps;
  const app = express();
  app.disable("x-powered-by");
  // Behind a load balancer, req.ip must come from X-Forwarded-For of trusted hops only.
  app.set("trust proxy", config.trustProxy);
  const securityHeaders = precomputedHeaders(
    helmet({
      // GraphiQL is served from this origin only: scripts and styles from 'self', nothing from a CDN.
      contentSecurityPolicy: { directives: { "script-src": ["'self'"], "worker-src": ["'self'", "blob:"] } },
    }),
  );
  app.use(securityHeaders);

  // Request id, forked EntityManager and one log line per request.
  const track = requestTracker(deps);
  app.use((req, res, next) => {
    req.ctx = track(req, res, req.originalUrl, req.path);
    next();
  });

  app.use(healthRoutes(deps));
  app.get("/metrics", async (_req, res, next) => {
    try {
      res.setHeader("content-type", deps.metrics.registry.contentType);
      res.send(await deps.metrics.registry.metrics());
    } catch (err) {
      next(err);
    }
  });
  app.use(graphiqlRouter({ enabled: config.graphiqlEnabled, apiKey: config.env !== "production" ? deps.apiKeys[0] : undefined }));
  const webhookPaths = ["/iamport-webhook", "/iamport-callback/schedule"];
  // Iamport sends bursts from few addresses (every renewal of the 1st of the month): a larger budget there.
  const webhookGuards = [webhookAllowList(config.webhookAllowedIps), ipRateLimit(config.rateLimitPublicPerMinute * 10, "webhook", deps.rateLimitStore?.())];
  app.use(webhookPaths, ...webhookGuards);
  app.use(/^\/(?!graphql|iamport-webhook|iamport-callback|healthz|readyz|metrics|graphiql).*/, ipRateLimit(config.rateLimitPublicPerMinute, "public", deps.rateLimitStore?.()));
  // Who is calling: one authenticator for /graphql and the REST card routes.
  const auth = { keys: parseApiKeys(deps.apiKeys), customerTokenSecret: deps.customerTokenSecret };
  app.use(bodyParsers(config.bodyLimit));
  app.use(restRoutes(services, config, auth));

  const limits = config.graphqlLimits;
  const armor = new ApolloArmor({
    maxDepth: { n: limits.maxDepth },
    maxAliases: { n: limits.maxAliases },
    // Token limits are enforced by graphql-js's own parser (parseOptions below): armor's
    // plugin re-parses and throws from inside Apollo, which turned syntax errors into 500s.
    maxTokens: { enabled: false },
    costLimit: { maxCost: limits.maxCost },
    maxDirectives: { n: 10 },
    // Field suggestions ("Did you mean ...?") are hidden by formatError below, in the one pass every
    // error already takes: armor's plugin for it added its hooks to every request.
    blockFieldSuggestion: { enabled: false },
  });
  const protection = armor.protect();
  const formatGraphqlError = formatError(logger, { hideSuggestions: config.env === "production" });
  // A duplicate waits at least as long as one charge may take (three Iamport calls), and 30 s under load;
  // a claim twice that old is abandoned.
  const idempotencyWaitMs = Math.max(30_000, 3 * config.iamport.timeoutMs + 5_000);
  const apollo = new ApolloServer<GraphQLContext>({
    schema: buildBillingSchema(),
    formatError: formatGraphqlError,
    includeStacktraceInErrorResponses: false,
    // The server stops Apollo itself after the HTTP server has drained (src/server.ts): Apollo's own
    // SIGTERM handler stopped it at once, failing every operation still arriving with a 500.
    stopOnTerminationSignals: false,
    introspection: config.introspection,
    // Batched operations multiply the cost of one request past every limit: refused.
    allowBatchedHttpRequests: false,
    parseOptions: { maxTokens: limits.maxTokens },
    // Automatic persisted queries are not offered: a wrong hash was an internal error.
    persistedQueries: false,
    validationRules: protection.validationRules,
    plugins: [
      ...protection.plugins,
      ApolloServerPluginLandingPageDisabled(),
      // Per-field cache hints and traces are work on every resolver that nothing here reads.
      ApolloServerPluginCacheControlDisabled(),
      ApolloServerPluginInlineTraceDisabled(),
      ApolloServerPluginUsageReportingDisabled(),
      idempotencyPlugin({
        store: new IdempotencyStore(deps.orm),
        secret: deps.customerTokenSecret,
        waitMs: idempotencyWaitMs,
        leaseMs: 2 * idempotencyWaitMs,
        formatError: formatGraphqlError,
      }),
      {
        async requestDidStart() {
          return {
            async didResolveOperation(rc) {
              rc.contextValue.operationName = rc.operationName ?? undefined;
            },
            async willSendResponse(rc) {
              const body = rc.response.body;
              const errors = body.kind === "single" ? body.singleResult.errors : undefined;
              const outcome = errors?.length ? String(errors[0].extensions?.code ?? "ERROR") : "ok";
              const seconds = Number(process.hrtime.bigint() - rc.contextValue.startedAt) / 1e9;
              deps.metrics.graphqlDuration.observe({ operation: rc.operationName ?? "anonymous", outcome }, seconds);
            },
          };
        },
      },
    ],
  });
  await apollo.start();

  const customerTokens = new CustomerTokenService(deps.customerTokenSecret, config.customerTokenMaxTtlSeconds);
  const graphqlCors = cors({ origin: config.corsOrigins.length ? config.corsOrigins : false, allowedHeaders: ["authorization", "content-type", "x-request-id", IDEMPOTENCY_HEADER], exposedHeaders: [REPLAYED_HEADER], maxAge: 600 });
  const graphqlIpLimit = ipRateLimit(config.rateLimitPublicPerMinute * 10, "graphql-ip", deps.rateLimitStore?.());
  const callerLimit = graphqlRateLimit(config.rateLimitPerMinute, deps.rateLimitStore?.());
  /** The request's own context, completed for GraphQL (its lazy em/log stay getters on its prototype). */
  const graphqlContext = (base: Ctx, res: { locals: Record<string, unknown> }): GraphQLContext => {
    const ctx = base as GraphQLContext;
    ctx.services = services;
    ctx.customerTokens = customerTokens;
    ctx.caller = res.locals.caller as GraphQLContext["caller"];
    ctx.startedAt = process.hrtime.bigint();
    res.locals.gqlContext = ctx;
    return ctx;
  };
  // Other methods on /graphql (GET queries, CORS preflights) go through Express; POST takes the endpoint below.
  app.use(
    "/graphql",
    graphqlCors,
    graphqlIpLimit,
    requireCaller(auth),
    callerLimit,
    expressMiddleware(apollo, {
      context: async ({ req, res }) => {
        return graphqlContext(req.ctx, res as unknown as { locals: Record<string, unknown> });
      },
    }),
  );

  app.use((_req, res) => {
    res.status(404).json({ status: "failed", code: "NOT_FOUND", message: "No such route" });
  });
  const handleError = errorHandler(logger);
  app.use(handleError);

  const endpoint = graphqlEndpoint<GraphQLContext>({
    apollo,
    app,
    bodyLimit: config.bodyLimit,
    before: mounted(securityHeaders, graphqlCors, graphqlIpLimit),
    authenticate: (req, res) => admitCaller(auth, req, res) !== null,
    after: mounted(callerLimit),
    context: (req, res) => graphqlContext((req as IncomingMessage & { ctx: Ctx }).ctx, res),
    onError: (err, req) => logger.error({ err, reqId: (req as IncomingMessage & { ctx?: Ctx }).ctx?.requestId }, "request failed"),
  });

  // Iamport's webhooks on node:http too: the same guards and handler as their Express routes.
  const webhookRoutes = new Map(
    (["iamport-webhook", "schedule-callback"] as const).map((source, i) => [
      webhookPaths[i],
      fastRoute({
        app,
        bodyLimit: config.bodyLimit,
        before: mounted(securityHeaders, ...webhookGuards),
        handler: webhookHandler(services, source) as unknown as Middleware,
        onError: (err, req, res) => handleError(err, req as never, res as never, () => undefined),
      }),
    ]),
  );

  /** The node:http handler: POST /graphql straight to Apollo, webhooks to their handler, everything else to Express. */
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? "";
    if (req.method === "POST") {
      const path = pathOf(url);
      if (path === "/graphql") {
        (req as IncomingMessage & { ctx: Ctx }).ctx = track(req, res, url, "/graphql");
        endpoint(req, res).catch(() => res.destroy());
        return;
      }
      const webhook = webhookRoutes.get(path);
      if (webhook) {
        (req as IncomingMessage & { ctx: Ctx }).ctx = track(req, res, url, path);
        webhook(req, res).catch(() => res.destroy());
        return;
      }
    }
    app(req, res);
  };
  return { app, apollo, handler };
}

/**
 * A request's Ctx. The EntityManager fork and the logger child are made on
 * first use, through getters on the prototype: Apollo copies the context's own
 * properties into each operation's context, which must not run them.
 */
class RequestContext implements Ctx {
  private emValue?: EntityManager;
  private logValue?: Logger;
  readonly db: EntityManager;

  constructor(
    readonly requestId: string,
    private readonly orm: MikroORM,
    private readonly rootLogger: Logger,
  ) {
    this.db = orm.em as unknown as EntityManager;
  }

  get em(): EntityManager {
    return (this.emValue ??= this.orm.em.fork() as unknown as EntityManager);
  }

  set em(value: EntityManager) {
    this.emValue = value;
  }

  get log(): Logger {
    return (this.logValue ??= this.rootLogger.child({ reqId: this.requestId }));
  }

  set log(value: Logger) {
    this.logValue = value;
  }
}

/**
 * Per request: the request id (echoed as x-request-id), a context whose
 * EntityManager fork and logger child are made on first use (a read that never
 * touches the ORM pays for neither), and on finish the duration metric and one
 * log line.
 */
function requestTracker(deps: AppDeps) {
  const { orm, logger, metrics } = deps;
  return (req: IncomingMessage, res: ServerResponse, originalUrl: string, path: string): Ctx => {
    const incoming = req.headers["x-request-id"];
    const requestId = typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    res.setHeader("x-request-id", requestId);
    const ctx = new RequestContext(requestId, orm, logger);
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const op = ((res as ServerResponse & { locals?: { gqlContext?: GraphQLContext } }).locals?.gqlContext)?.operationName;
      const route = routeLabel(originalUrl);
      metrics.httpDuration.observe({ method: req.method ?? "", route, status: String(res.statusCode) }, seconds);
      if (WEBHOOK_ROUTES.has(route)) metrics.webhooks.inc({ route, outcome: webhookOutcome(res.statusCode) });
      if (logger.isLevelEnabled("info")) {
        ctx.log.info({ method: req.method, path, status: res.statusCode, ms: Math.round(seconds * 10000) / 10, op }, "request");
      }
    });
    return ctx;
  };
}
