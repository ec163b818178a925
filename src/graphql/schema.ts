import { GraphQLSchema, lexicographicSortSchema, printSchema } from "graphql";
import { GraphQLDateTime } from "graphql-scalars";
import { buildSchemaSync } from "type-graphql";
import { AuthResolver } from "./resolvers/auth.resolver";
import { CardResolver } from "./resolvers/card.resolver";
import { PaymentResolver } from "./resolvers/payment.resolver";
import { SubscriptionResolver } from "./resolvers/subscription.resolver";

let cached: GraphQLSchema | undefined;

/** The GraphQL schema built from the resolvers (once per process). */
export function buildBillingSchema(): GraphQLSchema {
  cached ??= buildSchemaSync({
    resolvers: [CardResolver, PaymentResolver, SubscriptionResolver, AuthResolver],
    // The contract names its date scalar DateTime (ISO-8601).
    scalarsMap: [{ type: Date, scalar: GraphQLDateTime }],
    validate: false,
    emitSchemaFile: false,
  });
  return cached;
}

/** The SDL checked in as schema.graphql. */
export function printBillingSchema(): string {
  return printSchema(lexicographicSortSchema(buildBillingSchema())) + "\n";
}
