import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from "type-graphql";
import { Card, Plan, Subscription } from "../../db/entities";
import { SubscriptionStatus } from "../../db/entities/enums";
import { owned, ownCustomerFilter, requireCustomer } from "../authz";
import type { GraphQLContext } from "../context";
import { CancelSubscriptionInput, PaymentConnection, StartSubscriptionInput, SubscriptionConnection } from "../types";

@Resolver(() => Subscription)
export class SubscriptionResolver {
  @Query(() => Subscription, { nullable: true })
  async subscription(@Arg("id", () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<Subscription | null> {
    return owned(ctx, await ctx.services.subscriptions.get(ctx, id));
  }

  @Query(() => SubscriptionConnection)
  subscriptions(
    @Arg("customerUid", () => String, { nullable: true }) customerUid: string | null,
    @Arg("status", () => SubscriptionStatus, { nullable: true }) status: SubscriptionStatus | null,
    @Arg("first", () => Int, { nullable: true, defaultValue: 20 }) first: number,
    @Arg("after", () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<SubscriptionConnection> {
    return ctx.services.subscriptions.list(ctx, { customerUid: ownCustomerFilter(ctx, customerUid), status }, first, after);
  }

  @FieldResolver(() => Card, { nullable: true })
  card(@Root() sub: Subscription, @Ctx() ctx: GraphQLContext): Promise<Card | null> {
    return ctx.services.cards.get(ctx, sub.customerUid);
  }

  @FieldResolver(() => Plan, { nullable: true, description: "The plan it was started from; its terms are the subscription's own from then on." })
  plan(@Root() sub: Subscription, @Ctx() ctx: GraphQLContext): Promise<Plan | null> {
    return sub.planCode ? ctx.services.plans.get(ctx, sub.planCode) : Promise.resolve(null);
  }

  @FieldResolver(() => PaymentConnection)
  payments(
    @Root() sub: Subscription,
    @Arg("first", () => Int, { nullable: true }) first: number | null,
    @Arg("after", () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<PaymentConnection> {
    return ctx.services.payments.list(ctx, { subscriptionId: sub.id }, first ?? 20, after);
  }

  @Mutation(() => Subscription)
  startSubscription(@Arg("input", () => StartSubscriptionInput) input: StartSubscriptionInput, @Ctx() ctx: GraphQLContext): Promise<Subscription> {
    requireCustomer(ctx, input.customerUid);
    return ctx.services.subscriptions.start(ctx, input);
  }

  @Mutation(() => Subscription)
  async cancelSubscription(
    @Arg("input", () => CancelSubscriptionInput) input: CancelSubscriptionInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<Subscription> {
    if (ctx.caller.kind === "customer") owned(ctx, await ctx.services.subscriptions.get(ctx, input.id));
    return ctx.services.subscriptions.cancel(ctx, input);
  }
}
