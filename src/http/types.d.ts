import type { Ctx } from "../billing/context";
import type { Caller, GraphQLContext } from "../graphql/context";

declare module "fastify" {
  interface FastifyRequest {
    /** A JSON body as received, before parsing: PortOne V2's webhook signature covers these bytes. */
    rawBody?: string;
    /** Request id, request logger and EntityManager fork made on first use (set by the app's first hook). */
    ctx: Ctx;
    /** Who called /graphql (set by its authentication guard). */
    caller?: Caller;
    /** The GraphQL context of the request, for its log line's operation name. */
    gqlContext?: GraphQLContext;
    /** The customer a card route acts for, once its credentials allow it. */
    actingCustomer?: string;
  }
  interface FastifyContextConfig {
    /** A webhook or checkout return: counted in billing_webhooks_total. */
    webhook?: boolean;
    /** The route's CORS options (@fastify/cors reads them; false: none). */
    cors?: unknown;
  }
}

export {};
