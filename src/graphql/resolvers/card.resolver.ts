import { Arg, Ctx, Mutation, Query, Resolver } from "type-graphql";
import { Card } from "../../db/entities";
import { owned, requireCustomer } from "../authz";
import type { GraphQLContext } from "../context";
import { RegisterCardInput } from "../types";

@Resolver(() => Card)
export class CardResolver {
  @Query(() => Card, { nullable: true })
  async card(@Arg("customerUid", () => String) customerUid: string, @Ctx() ctx: GraphQLContext): Promise<Card | null> {
    requireCustomer(ctx, customerUid);
    return owned(ctx, await ctx.services.cards.get(ctx, customerUid));
  }

  @Mutation(() => Card)
  registerCard(@Arg("input", () => RegisterCardInput) input: RegisterCardInput, @Ctx() ctx: GraphQLContext): Promise<Card> {
    requireCustomer(ctx, input.customerUid);
    return ctx.services.cards.register(ctx, input);
  }

  @Mutation(() => Card, {
    description:
      "Delete the billing key. Refused with CONFLICT (extensions.subscriptionIds) while live subscriptions use it, unless cancelSubscriptions.",
  })
  deleteCard(
    @Arg("customerUid", () => String) customerUid: string,
    @Arg("cancelSubscriptions", () => Boolean, {
      nullable: true,
      defaultValue: false,
      description: "Cancel the customer's live subscriptions first (as cancelSubscription without atPeriodEnd), then delete the key.",
    })
    cancelSubscriptions: boolean | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<Card> {
    requireCustomer(ctx, customerUid);
    return ctx.services.cards.delete(ctx, customerUid, { cancelSubscriptions });
  }
}
