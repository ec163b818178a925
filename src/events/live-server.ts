import type http from "node:http";
import { getOperationAST, GraphQLError, type GraphQLFieldConfig, parse, GraphQLList, GraphQLNonNull, type GraphQLObjectType, GraphQLString, type GraphQLSchema } from "graphql";
import type { useServer as UseServer } from "graphql-ws/dist/use/ws";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import { AppError } from "../errors";
import type { Caller } from "../graphql/context";
import { authenticate, type Authenticator } from "../http/auth";
import { requireActingFor } from "../security/authz";
import type { EventFeed } from "./live";
import { isEventType } from "./types";
import type { EventView } from "./views";

// graphql-ws publishes its ws adapter under a subpath export only, which this project's module resolution does not read for types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { useServer } = require("graphql-ws/use/ws") as { useServer: typeof UseServer };

/** The context of a live operation: who connected, and the process's feed of committed events. */
export interface LiveContext {
  caller: Caller;
  feed: EventFeed;
}

function userError(err: unknown): GraphQLError {
  if (err instanceof AppError) return new GraphQLError(err.message, { extensions: { code: err.code } });
  return new GraphQLError(err instanceof Error ? err.message : String(err));
}

/**
 * Live.events: the events committed from now on, as they happen on any
 * server process. A customer token receives only its own customer's events
 * (naming another customer is FORBIDDEN); a merchant key receives all, or
 * those of `customerUid`.
 */
export function liveEventsField(event: GraphQLObjectType): GraphQLFieldConfig<EventView, LiveContext, { types?: string[] | null; customerUid?: string | null }> {
  return {
    type: new GraphQLNonNull(event),
    description: "Events as they are committed, on whichever server process. A customer token receives only its own customer's events.",
    args: {
      types: { type: new GraphQLList(new GraphQLNonNull(GraphQLString)), description: "Only these types (all when omitted)." },
      customerUid: { type: GraphQLString, description: "Only this customer's events (a customer token: its own, always)." },
    },
    subscribe: (_root, args, ctx) => {
      try {
        for (const t of args.types ?? []) {
          if (!isEventType(t)) throw new GraphQLError(`types contains ${JSON.stringify(t.slice(0, 60))}, which is not an event type`, { extensions: { code: "BAD_USER_INPUT", field: "types" } });
        }
        let customerUid = args.customerUid ?? null;
        if (ctx.caller.kind === "customer") {
          requireActingFor(ctx.caller, customerUid ?? ctx.caller.customerUid);
          customerUid = ctx.caller.customerUid;
        }
        return ctx.feed.subscribe({ types: args.types, customerUid });
      } catch (err) {
        throw err instanceof GraphQLError ? err : userError(err);
      }
    },
    resolve: (payload) => payload,
  };
}

/**
 * graphql-ws on /graphql, beside the HTTP routes on the same server: the
 * WebSocket upgrade of that path is answered here (Fastify never sees it).
 * The connection's credentials come in connectionParams, as the HTTP
 * Authorization header would carry them: `{ authorization: "Bearer <key or
 * customer token>" }`. Without valid ones the connection is refused (4403).
 */
export function attachLiveServer(opts: { server: http.Server; schema: GraphQLSchema; auth: Authenticator; feed: EventFeed; logger: Logger }): { close(): Promise<void> } {
  const wss = new WebSocketServer({ server: opts.server, path: "/graphql", maxPayload: 64 * 1024 });
  const callers = new WeakMap<object, Caller>();
  const disposable = useServer<Record<string, unknown>>(
    {
      schema: opts.schema,
      onConnect: (ctx) => {
        const params = ctx.connectionParams ?? {};
        const header = typeof params.authorization === "string" ? params.authorization : typeof params.Authorization === "string" ? params.Authorization : undefined;
        const caller = authenticate(opts.auth, header);
        if (!caller) return false;
        callers.set(ctx.extra, caller);
        return true;
      },
      context: (ctx): LiveContext => ({ caller: callers.get(ctx.extra)!, feed: opts.feed }),
      onSubscribe: (_ctx, _id, payload) => {
        // Live is for subscriptions: queries and mutations go over HTTP, through its guards and limits.
        let operation;
        try {
          operation = getOperationAST(parse(payload.query, { maxTokens: 2000 }), payload.operationName);
        } catch (err) {
          return [err instanceof GraphQLError ? err : new GraphQLError(String(err))];
        }
        if (operation && operation.operation !== "subscription") {
          return [new GraphQLError("Only subscription operations are served over WebSocket; send queries and mutations over HTTP")];
        }
        return undefined;
      },
      onError: (_ctx, _id, _payload, errors) => {
        opts.logger.debug({ errors: errors.map((e) => e.message) }, "live subscription error");
      },
    },
    wss,
  );
  return {
    async close() {
      for (const client of wss.clients) client.close(1001, "Going away");
      await disposable.dispose();
    },
  };
}
