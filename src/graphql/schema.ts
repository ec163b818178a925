import { GraphQLObjectType, GraphQLSchema, lexicographicSortSchema, printSchema } from "graphql";
import { liveEventsField } from "../events/live-server";
import { EventResolver } from "./resolvers/event.resolver";
import { GraphQLDateTime } from "graphql-scalars";
import { buildSchemaSync } from "type-graphql";
import { AuthResolver } from "./resolvers/auth.resolver";
import { CardResolver } from "./resolvers/card.resolver";
import { PaymentResolver } from "./resolvers/payment.resolver";
import { PlanResolver } from "./resolvers/plan.resolver";
import { SubscriptionResolver } from "./resolvers/subscription.resolver";

let cached: GraphQLSchema | undefined;

/**
 * The GraphQL schema built from the resolvers (once per process), with the
 * subscription root `Live` (live updates over graphql-ws): named Live because
 * `Subscription` is the domain type, and added here because type-graphql
 * names its subscription root Subscription.
 */
export function buildBillingSchema(): GraphQLSchema {
  if (cached) return cached;
  const base = buildSchemaSync({
    resolvers: [CardResolver, PaymentResolver, PlanResolver, SubscriptionResolver, AuthResolver, EventResolver],
    // The contract names its date scalar DateTime (ISO-8601).
    scalarsMap: [{ type: Date, scalar: GraphQLDateTime }],
    validate: false,
    emitSchemaFile: false,
  });
  const live = new GraphQLObjectType({
    name: "Live",
    description: "Live updates, over graphql-ws on /graphql (credentials in connectionParams.authorization).",
    fields: { events: liveEventsField(base.getType("Event") as GraphQLObjectType) as never },
  });
  cached = new GraphQLSchema({ ...base.toConfig(), subscription: live });
  return cached;
}

/** The SDL checked in as schema.graphql. */
export function printBillingSchema(): string {
  return printSchema(lexicographicSortSchema(buildBillingSchema())) + "\n";
}
