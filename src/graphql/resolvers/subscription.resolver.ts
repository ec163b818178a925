import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from "type-graphql";
import { Card, Notice, Plan, PriceChange, Subscription } from "../../db/entities";
import { CancellationRefund, SubscriptionStatus } from "../../db/entities/enums";
import { owned, ownCustomerFilter, requireCustomer, requireMerchant } from "../authz";
import type { GraphQLContext } from "../context";
import { loaders } from "../loaders";
import { CancellationPreview, CancelSubscriptionInput, ChangeSubscriptionPlanInput, PaymentConnection, StartSubscriptionInput, SubscriptionConnection } from "../types";

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

  @Mutation(() => Subscription, { description: "Charges a PAST_DUE or UNPAID subscription now (after the customer registered a new card)." })
  async retrySubscriptionPayment(@Arg("id", () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<Subscription> {
    if (ctx.caller.kind === "customer") owned(ctx, await ctx.services.subscriptions.get(ctx, id));
    return ctx.services.subscriptions.retryPayment(ctx, id);
  }

  @Mutation(() => Subscription, {
    description:
      "Moves an ACTIVE subscription to another plan of the same interval. A customer token's upgrade is the customer's consent to the new price; a merchant key's upgrade (a higher amount) changes nothing now: it opens a price change that carries the plan (pendingPriceChange), applied at the renewal it names once the customer accepts it (respondToPriceChange). Downgrades work with either. CONFLICT while a price change is in flight.",
  })
  async changeSubscriptionPlan(
    @Arg("input", () => ChangeSubscriptionPlanInput) input: ChangeSubscriptionPlanInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<Subscription> {
    // The customer asking for the change is the consent its price needs; a merchant's upgrade asks for that consent.
    if (ctx.caller.kind === "customer") owned(ctx, await ctx.services.subscriptions.get(ctx, input.id));
    return ctx.services.subscriptions.changePlan(ctx, input, ctx.caller.kind === "customer" ? "customer" : "merchant");
  }

  @Mutation(() => Subscription, { description: "Pauses an ACTIVE subscription at once: its pending renewal is revoked at the payment provider; nothing is charged until it resumes." })
  async pauseSubscription(
    @Arg("id", () => ID) id: string,
    @Arg("resumesAt", () => Date, { nullable: true, description: "Resumed by itself then (a new period charged)." }) resumesAt: Date | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<Subscription> {
    if (ctx.caller.kind === "customer") owned(ctx, await ctx.services.subscriptions.get(ctx, id));
    return ctx.services.subscriptions.pause(ctx, id, resumesAt);
  }

  @Mutation(() => Subscription, { description: "Resumes a paused subscription, or undoes a cancellation at period end." })
  async resumeSubscription(@Arg("id", () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<Subscription> {
    if (ctx.caller.kind === "customer") owned(ctx, await ctx.services.subscriptions.get(ctx, id));
    return ctx.services.subscriptions.resume(ctx, id);
  }

  @Query(() => CancellationPreview, { description: "What cancelSubscription with a refund would give back now." })
  async cancellationPreview(@Arg("id", () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<CancellationPreview> {
    if (ctx.caller.kind === "customer") owned(ctx, await ctx.services.subscriptions.get(ctx, id));
    return ctx.services.subscriptions.cancellationPreview(ctx, id);
  }

  @FieldResolver(() => Card, { nullable: true })
  card(@Root() sub: Subscription, @Ctx() ctx: GraphQLContext): Promise<Card | null> {
    return loaders(ctx).card.load(sub.customerUid);
  }

  @FieldResolver(() => Plan, { nullable: true, description: "The plan it was started from; its terms are the subscription's own from then on." })
  plan(@Root() sub: Subscription, @Ctx() ctx: GraphQLContext): Promise<Plan | null> {
    return sub.planCode ? loaders(ctx).plan.load(sub.planCode) : Promise.resolve(null);
  }

  @FieldResolver(() => PriceChange, { nullable: true, description: "The price change in flight: waiting for the customer's answer, or accepted and not yet in force." })
  pendingPriceChange(@Root() sub: Subscription, @Ctx() ctx: GraphQLContext): Promise<PriceChange | null> {
    return loaders(ctx).pendingPriceChange.load(sub.id);
  }

  @FieldResolver(() => [Notice], { description: "Notices before charges: the next ones still to go out (sentAt null), then those sent, newest first." })
  notices(
    @Root() sub: Subscription,
    @Arg("first", () => Int, { nullable: true, defaultValue: 20 }) first: number,
    @Ctx() ctx: GraphQLContext,
  ): Promise<Notice[]> {
    return loaders(ctx).notices(sub, first);
  }

  @FieldResolver(() => PaymentConnection)
  payments(
    @Root() sub: Subscription,
    @Arg("first", () => Int, { nullable: true }) first: number | null,
    @Arg("after", () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<PaymentConnection> {
    return loaders(ctx).payments(sub.id, first ?? 20, after);
  }

  @Mutation(() => Subscription)
  startSubscription(@Arg("input", () => StartSubscriptionInput) input: StartSubscriptionInput, @Ctx() ctx: GraphQLContext): Promise<Subscription> {
    requireCustomer(ctx, input.customerUid);
    return ctx.services.subscriptions.start(ctx, input);
  }

  @Mutation(() => Subscription, {
    description: "The customer's consent (customer token, or a merchant key recording it) to be charged when the trial ends.",
  })
  async consentToTrialConversion(@Arg("subscriptionId", () => ID) subscriptionId: string, @Ctx() ctx: GraphQLContext): Promise<Subscription> {
    if (ctx.caller.kind === "customer") owned(ctx, await ctx.services.subscriptions.get(ctx, subscriptionId));
    return ctx.services.subscriptions.consentToTrialConversion(ctx, subscriptionId, ctx.caller.kind === "customer" ? "customer" : "merchant");
  }

  @Mutation(() => Subscription)
  async cancelSubscription(
    @Arg("input", () => CancelSubscriptionInput) input: CancelSubscriptionInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<Subscription> {
    if (ctx.caller.kind === "customer") {
      owned(ctx, await ctx.services.subscriptions.get(ctx, input.id));
      // The pro-rata refund is the customer's due; giving back the whole payment is the merchant's decision.
      if (input.refund === CancellationRefund.FULL) requireMerchant(ctx);
    }
    return ctx.services.subscriptions.cancel(ctx, input);
  }
}
