import { Arg, Ctx, ID, Mutation, Resolver } from "type-graphql";
import { PriceChange } from "../../db/entities";
import { owned, requireMerchant } from "../authz";
import type { GraphQLContext } from "../context";
import { RequestPriceChangeInput } from "../types";

/** Price changes: the merchant asks for one; the customer (or the merchant recording the customer's word) answers. */
@Resolver(() => PriceChange)
export class PriceChangeResolver {
  @Mutation(() => PriceChange)
  requestPriceChange(@Arg("input", () => RequestPriceChangeInput) input: RequestPriceChangeInput, @Ctx() ctx: GraphQLContext): Promise<PriceChange> {
    requireMerchant(ctx);
    return ctx.services.priceChanges.request(ctx, input);
  }

  @Mutation(() => PriceChange, { description: "The customer's answer (customer token, or a merchant key recording it)." })
  async respondToPriceChange(
    @Arg("id", () => ID) id: string,
    @Arg("accept", () => Boolean) accept: boolean,
    @Ctx() ctx: GraphQLContext,
  ): Promise<PriceChange> {
    if (ctx.caller.kind === "customer") {
      const change = await ctx.services.priceChanges.get(ctx, id);
      if (change) owned(ctx, await ctx.services.subscriptions.get(ctx, change.subscriptionId));
    }
    return ctx.services.priceChanges.respond(ctx, id, accept, ctx.caller.kind === "customer" ? "customer" : "merchant");
  }

  @Mutation(() => PriceChange, {
    description:
      "Withdraws a price change still waiting for the customer's answer (merchant key): CANCELED, and nothing else changes. An answered change (accepted, declined or expired) cannot be withdrawn.",
  })
  withdrawPriceChange(@Arg("id", () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<PriceChange> {
    requireMerchant(ctx);
    return ctx.services.priceChanges.withdraw(ctx, id);
  }
}
