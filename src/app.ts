import crypto from "node:crypto";
import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginLandingPageDisabled } from "@apollo/server/plugin/disabled";
import { expressMiddleware } from "@as-integrations/express5";
import type { MikroORM } from "@mikro-orm/postgresql";
import { ApolloArmor } from "@escape.tech/graphql-armor";
import cors from "cors";
import express, { Express } from "express";
import helmet from "helmet";
import type { Logger } from "pino";
import type { Services } from "./billing/services";
import type { Config } from "./config";
import type { GraphQLContext } from "./graphql/context";
import { formatError } from "./graphql/errors";
import { buildBillingSchema } from "./graphql/schema";
import { parseApiKeys, requireCaller } from "./http/auth";
import { healthRoutes } from "./http/health";
import { bodyParsers, errorHandler, restRoutes } from "./http/routes";
import { graphqlRateLimit, ipRateLimit, webhookAllowList } from "./http/security";
import type { IamportClient } from "./iamport/iamport.client";
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
}

export interface BuiltApp {
  app: Express;
  apollo: ApolloServer<GraphQLContext>;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Builds the express app: request context, REST routes, /graphql, errors. Starts nothing. */
export async function createApp(deps: AppDeps): Promise<BuiltApp> {
  const { config, orm, services, logger } = deps;
  const app = express();
  app.disable("x-powered-by");
  // Behind a load balancer, req.ip must come from X-Forwarded-For of trusted hops only.
  app.set("trust proxy", config.trustProxy);
  app.use(
    helmet({
      // GraphiQL is served from this origin only: scripts and styles from 'self', nothing from a CDN.
      contentSecurityPolicy: { directives: { "script-src": ["'self'"], "worker-src": ["'self'", "blob:"] } },
    }),
  );

  // Request id, forked EntityManager and one log line per request.
  app.use((req, res, next) => {
    const incoming = req.headers["x-request-id"];
    const requestId = typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    res.setHeader("x-request-id", requestId);
    const log = logger.child({ reqId: requestId });
    req.ctx = { em: orm.em.fork(), requestId, log };
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const op = (res.locals.gqlContext as GraphQLContext | undefined)?.operationName;
      log.info({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10, op }, "request");
    });
    next();
  });

  app.use(healthRoutes(deps));
  const webhookPaths = ["/iamport-webhook", "/iamport-callback/schedule"];
  // Iamport sends bursts from few addresses (every renewal of the 1st of the month): a larger budget there.
  app.use(webhookPaths, webhookAllowList(config.webhookAllowedIps), ipRateLimit(config.rateLimitPublicPerMinute * 10, "webhook", deps.rateLimitStore?.()));
  app.use(/^\/(?!graphql|iamport-webhook|iamport-callback|healthz|readyz|metrics|graphiql).*/, ipRateLimit(config.rateLimitPublicPerMinute, "public", deps.rateLimitStore?.()));
  app.use(bodyParsers(config.bodyLimit));
  app.use(restRoutes(services, config));

  const limits = config.graphqlLimits;
  const armor = new ApolloArmor({
    maxDepth: { n: limits.maxDepth },
    maxAliases: { n: limits.maxAliases },
    maxTokens: { n: limits.maxTokens },
    costLimit: { maxCost: limits.maxCost },
    maxDirectives: { n: 10 },
    blockFieldSuggestion: { enabled: config.env === "production" },
  });
  const protection = armor.protect();
  const apollo = new ApolloServer<GraphQLContext>({
    schema: buildBillingSchema(),
    formatError: formatError(logger, config.env === "development"),
    includeStacktraceInErrorResponses: false,
    introspection: config.introspection,
    // Batched operations multiply the cost of one request past every limit: refused.
    allowBatchedHttpRequests: false,
    validationRules: protection.validationRules,
    plugins: [
      ...protection.plugins,
      ApolloServerPluginLandingPageDisabled(),
      {
        async requestDidStart() {
          return {
            async didResolveOperation(rc) {
              rc.contextValue.operationName = rc.operationName ?? undefined;
            },
          };
        },
      },
    ],
  });
  await apollo.start();

  const customerTokens = new CustomerTokenService(deps.customerTokenSecret, config.customerTokenMaxTtlSeconds);
  app.use(
    "/graphql",
    cors({ origin: config.corsOrigins.length ? config.corsOrigins : false, allowedHeaders: ["authorization", "content-type", "x-request-id"], maxAge: 600 }),
    ipRateLimit(config.rateLimitPublicPerMinute * 10, "graphql-ip", deps.rateLimitStore?.()),
    requireCaller({ keys: parseApiKeys(deps.apiKeys), customerTokenSecret: deps.customerTokenSecret }),
    graphqlRateLimit(config.rateLimitPerMinute, deps.rateLimitStore?.()),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => {
        const ctx: GraphQLContext = { ...req.ctx, services, customerTokens, caller: res.locals.caller };
        res.locals.gqlContext = ctx;
        return ctx;
      },
    }),
  );

  app.use((_req, res) => {
    res.status(404).json({ status: "failed", code: "NOT_FOUND", message: "No such route" });
  });
  app.use(errorHandler(logger));
  return { app, apollo };
}
