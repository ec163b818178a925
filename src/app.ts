import crypto from "node:crypto";
import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginLandingPageDisabled } from "@apollo/server/plugin/disabled";
import { expressMiddleware } from "@as-integrations/express5";
import type { MikroORM } from "@mikro-orm/postgresql";
import express, { Express } from "express";
import type { Logger } from "pino";
import type { Services } from "./billing/services";
import type { Config } from "./config";
import type { GraphQLContext } from "./graphql/context";
import { formatError } from "./graphql/errors";
import { buildBillingSchema } from "./graphql/schema";
import { parseApiKeys, requireApiKey } from "./http/auth";
import { healthRoutes } from "./http/health";
import { bodyParsers, errorHandler, restRoutes } from "./http/routes";
import type { IamportClient } from "./iamport/iamport.client";

export interface AppDeps {
  config: Config;
  orm: MikroORM;
  services: Services;
  iamport: IamportClient;
  logger: Logger;
  /** The keys accepted on /graphql (config.apiKeys, or the generated development key). */
  apiKeys: string[];
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
  app.set("trust proxy", false);

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
  app.use(bodyParsers("64kb"));
  app.use(restRoutes(services, config));

  const apollo = new ApolloServer<GraphQLContext>({
    schema: buildBillingSchema(),
    formatError: formatError(logger, config.env === "development"),
    includeStacktraceInErrorResponses: false,
    introspection: true,
    plugins: [
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

  app.use(
    "/graphql",
    requireApiKey(parseApiKeys(deps.apiKeys)),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => {
        const ctx: GraphQLContext = { ...req.ctx, services, caller: res.locals.caller };
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
