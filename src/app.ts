import crypto from "node:crypto";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import querystring from "node:querystring";
import { ApolloServer } from "@apollo/server";
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginLandingPageDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from "@apollo/server/plugin/disabled";
import fastifyCors from "@fastify/cors";
import fastifyFormbody from "@fastify/formbody";
import fastifyRateLimit, { type FastifyRateLimitStoreCtor } from "@fastify/rate-limit";
import type { EntityManager, MikroORM } from "@mikro-orm/postgresql";
import { ApolloArmor } from "@escape.tech/graphql-armor";
import bytes from "bytes";
import Fastify, { type FastifyInstance, type FastifyServerFactory } from "fastify";
import type { Logger } from "pino";
import type { Ctx } from "./billing/context";
import type { Services } from "./billing/services";
import type { Config } from "./config";
import type { GraphQLContext } from "./graphql/context";
import { formatError } from "./graphql/errors";
import { IDEMPOTENCY_HEADER, idempotencyPlugin, REPLAYED_HEADER } from "./graphql/idempotency";
import { IdempotencyStore } from "./db/repositories/idempotency-keys";
import { buildBillingSchema } from "./graphql/schema";
import { parseApiKeys } from "./http/auth";
import { graphqlHandler } from "./http/graphql";
import { errorHandler, routeTable } from "./http/routes";
import { securityHeaders } from "./http/security";
import type { PaymentProvider } from "./provider/port";
import type { Metrics } from "./metrics";
import { CustomerTokenService } from "./security/customer-token.service";
import type { EventsService } from "./events/events.service";
import type { EventFeed } from "./events/live";
import { attachLiveServer } from "./events/live-server";

export interface AppDeps {
  config: Config;
  orm: MikroORM;
  services: Services;
  provider: PaymentProvider;
  logger: Logger;
  /** The keys accepted on /graphql (config.apiKeys, or the generated development key). */
  apiKeys: string[];
  /** HS256 secret of customer tokens (config, or generated per process in development). */
  customerTokenSecret: string;
  /** Shared rate-limit store (several processes); undefined: in memory. */
  rateLimitStore?: FastifyRateLimitStoreCtor;
  metrics: Metrics;
  /** The node:http server Fastify runs on (the server's drain-aware one); default: Fastify's own. */
  serverFactory?: FastifyServerFactory;
  events: EventsService;
  /** The committed events of every process, for live updates (graphql-ws on /graphql); undefined: no live updates. */
  feed?: EventFeed;
}

export interface BuiltApp {
  app: FastifyInstance;
  apollo: ApolloServer<GraphQLContext>;
  /** graphql-ws on /graphql: closed (its connections ended) before the HTTP server drains. */
  live?: { close(): Promise<void> };
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

function webhookOutcome(status: number): string {
  if (status < 300) return "handled";
  if (status < 400) return "redirected";
  if (status === 429) return "rate_limited";
  if (status < 500) return "rejected";
  return "retry";
}

/** A body that is not what its media type says: 400 BAD_USER_INPUT (the error handler's answer for 4xx). */
function unparseable(): Error {
  return Object.assign(new Error("The body could not be parsed"), { statusCode: 400 });
}

/**
 * JSON bodies as strict JSON APIs read them: only an object or an array, a
 * UTF-8 byte-order mark ignored (some senders prepend one).
 */
function parseJson(text: string): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const first = /^[ \t\n\r]*(.)/.exec(text)?.[1];
  if (first !== "{" && first !== "[") throw unparseable();
  try {
    return JSON.parse(text);
  } catch {
    throw unparseable();
  }
}

/** Form bodies (Iamport posts its webhooks as forms): flat fields, at most 100 of them. */
function parseForm(text: string): Record<string, unknown> {
  if (text.split("&").length > 100) throw unparseable();
  return { ...querystring.parse(text) };
}

/**
 * A request Node could not parse (headers over 16 KiB, a malformed request
 * line): answered with `Connection: close`, as Node answers it, and then
 * closed gracefully. Fastify's answer left `Connection: close` out (a
 * keep-alive client reused the dead connection), and closing at once, with
 * the rest of the request unread, reset the connection before the client
 * could read the answer.
 */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  // Called again for the bytes that follow an unparseable request: answered once.
  if (socket.writableEnded) return;
  const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
  const body = JSON.stringify({ status: "failed", code: "BAD_USER_INPUT", message: status === 431 ? "The request's headers are too large" : "The request could not be read" });
  if (!socket.writable) {
    socket.destroy(err);
    return;
  }
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // What the client still sends is read and dropped until it closes; a client that never does is cut off.
  socket.resume();
  setTimeout(() => socket.destroy(), 5_000).unref();
}

/** Builds the HTTP app: request context, security headers, CORS, rate limits, the route table, errors. Starts nothing. */
export async function createApp(deps: AppDeps): Promise<BuiltApp> {
  const { config, services, logger, orm, metrics } = deps;
  const app = Fastify({
    // One log line per request comes from the onResponse hook below, through the server's logger.
    logger: false,
    requestIdHeader: false,
    // Behind a load balancer, req.ip must come from X-Forwarded-For of trusted hops only.
    // A number is a count of hops, as Fastify's proxy-addr reads it (its type declarations omit it).
    trustProxy: config.trustProxy as boolean | string,
    bodyLimit: bytes.parse(config.bodyLimit) ?? 100 * 1024,
    // A shutdown answers what still arrives on open connections (with Connection: close, src/server.ts).
    return503OnClosing: false,
    clientErrorHandler: clientError,
    serverFactory: deps.serverFactory,
    routerOptions: { ignoreTrailingSlash: true },
    // The REST routes' schemas refuse a value of the wrong type instead of converting it (a number is not an imp_uid).
    ajv: { customOptions: { coerceTypes: false } },
  });
  // GraphiQL is served from this origin only: scripts and styles from 'self', nothing from a CDN.
  const secure = await securityHeaders({ contentSecurityPolicy: { directives: { "script-src": ["'self'"], "worker-src": ["'self'", "blob:"] } } });
  app.decorateRequest("ctx", null as unknown as Ctx);
  app.decorateRequest("caller", undefined);
  app.decorateRequest("gqlContext", undefined);
  app.decorateRequest("actingCustomer", undefined);

  // First: the security headers, the request id (echoed as x-request-id) and the request's context, which every guard may log with.
  app.addHook("onRequest", (req, reply, done) => {
    const incoming = req.headers["x-request-id"];
    const requestId = typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    reply.headers(secure).header("x-request-id", requestId);
    req.ctx = new RequestContext(requestId, orm, logger);
    done();
  });
  // On finish: the duration metric by route pattern (never the raw path, which callers control) and one log line.
  app.addHook("onResponse", (req, reply, done) => {
    const seconds = reply.elapsedTime / 1000;
    // Fastify builds routeOptions anew on every read: read once.
    const { url, config: routeConfig } = req.routeOptions;
    const route = url ?? "other";
    metrics.httpDuration.observe({ method: req.method, route, status: String(reply.statusCode) }, seconds);
    if (routeConfig?.webhook) metrics.webhooks.inc({ route, outcome: webhookOutcome(reply.statusCode) });
    if (logger.isLevelEnabled("info") && req.ctx) {
      const queryStart = req.url.indexOf("?");
      const path = queryStart < 0 ? req.url : req.url.slice(0, queryStart);
      req.ctx.log.info({ method: req.method, path, status: reply.statusCode, ms: Math.round(seconds * 10000) / 10, op: req.gqlContext?.operationName }, "request");
    }
    done();
  });

  // Off everywhere; the routes of the table marked `cors` (only /graphql) turn it on for CORS_ORIGINS.
  await app.register(fastifyCors, { origin: false });
  await app.register(fastifyRateLimit, { global: false, store: deps.rateLimitStore });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    try {
      if (req.url === "/portone-webhook" || req.url.startsWith("/portone-webhook?")) req.rawBody = body as string;
      done(null, parseJson(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  await app.register(fastifyFormbody, { parser: parseForm });

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
              metrics.graphqlDuration.observe({ operation: rc.operationName ?? "anonymous", outcome }, seconds);
            },
          };
        },
      },
    ],
  });
  await apollo.start();

  const customerTokens = new CustomerTokenService(deps.customerTokenSecret, config.customerTokenMaxTtlSeconds);
  // The request's own context, completed for GraphQL (its lazy em/log stay getters on its prototype).
  const graphql = graphqlHandler(apollo, async (req) => {
    const ctx = req.ctx as GraphQLContext;
    ctx.services = services;
    ctx.events = deps.events;
    ctx.customerTokens = customerTokens;
    ctx.caller = req.caller!;
    ctx.startedAt = process.hrtime.bigint();
    req.gqlContext = ctx;
    return ctx;
  });
  const cors = config.corsOrigins.length
    ? { origin: config.corsOrigins, allowedHeaders: ["authorization", "content-type", "x-request-id", IDEMPOTENCY_HEADER].join(","), exposedHeaders: [REPLAYED_HEADER], maxAge: 600 }
    : false;
  const auth = { keys: parseApiKeys(deps.apiKeys), customerTokenSecret: deps.customerTokenSecret };
  const routes = routeTable({ ...deps, app, auth, graphql, graphiqlKey: config.env !== "production" ? deps.apiKeys[0] : undefined });
  for (const r of routes) {
    const guards = (r.guards ?? []).filter((g) => g !== undefined);
    app.route({
      method: r.method,
      url: r.url,
      onRequest: guards.length ? guards : undefined,
      preValidation: r.bodyGuards,
      schema: r.schema,
      config: { webhook: r.webhook, cors: r.cors ? cors : false },
      handler: r.handler,
    });
  }
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ status: "failed", code: "NOT_FOUND", message: "No such route" }));
  app.setErrorHandler(errorHandler(logger));
  await app.ready();
  const live = deps.feed ? attachLiveServer({ server: app.server, schema: buildBillingSchema(), auth, feed: deps.feed, logger }) : undefined;
  return { app, apollo, live };
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
