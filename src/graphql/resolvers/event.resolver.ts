import { Arg, Ctx, ID, Int, Mutation, Query, Resolver } from "type-graphql";
import { ownCustomerFilter, owned, requireMerchant } from "../authz";
import type { GraphQLContext } from "../context";
import { Event, EventConnection, EventDelivery, WebhookEndpoint, WebhookEndpointSecret } from "../event-types";

/** The event ledger (customers read their own events) and the merchant's webhook endpoints (merchant keys only). */
@Resolver(() => Event)
export class EventResolver {
  @Query(() => EventConnection)
  async events(
    @Arg("first", () => Int, { nullable: true, defaultValue: 20 }) first: number,
    @Arg("after", () => String, { nullable: true }) after: string | null,
    @Arg("type", () => String, { nullable: true }) type: string | null,
    @Arg("customerUid", () => String, { nullable: true }) customerUid: string | null,
    @Arg("subscriptionId", () => ID, { nullable: true }) subscriptionId: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<EventConnection> {
    const own = ownCustomerFilter(ctx, customerUid);
    return ctx.events.list(ctx.db ?? ctx.em, { type, customerUid: own, subscriptionId }, first, after);
  }

  @Query(() => Event, { nullable: true })
  async event(@Arg("id", () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<Event | null> {
    return owned(ctx, await ctx.events.get(ctx.db ?? ctx.em, id));
  }

  @Query(() => [WebhookEndpoint])
  webhookEndpoints(@Ctx() ctx: GraphQLContext): Promise<WebhookEndpoint[]> {
    requireMerchant(ctx);
    return ctx.events.endpoints(ctx.db ?? ctx.em);
  }

  @Query(() => [EventDelivery])
  eventDeliveries(@Arg("eventId", () => ID) eventId: string, @Ctx() ctx: GraphQLContext): Promise<EventDelivery[]> {
    requireMerchant(ctx);
    return ctx.events.deliveries(ctx.db ?? ctx.em, eventId);
  }

  @Mutation(() => WebhookEndpointSecret)
  createWebhookEndpoint(
    @Arg("url", () => String) url: string,
    @Arg("eventTypes", () => [String], { nullable: true }) eventTypes: string[] | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<WebhookEndpointSecret> {
    requireMerchant(ctx);
    return ctx.events.createEndpoint(ctx.db ?? ctx.em, url, eventTypes);
  }

  @Mutation(() => WebhookEndpoint)
  updateWebhookEndpoint(
    @Arg("id", () => ID) id: string,
    @Arg("url", () => String, { nullable: true }) url: string | null,
    @Arg("eventTypes", () => [String], { nullable: true }) eventTypes: string[] | null,
    @Arg("enabled", () => Boolean, { nullable: true }) enabled: boolean | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<WebhookEndpoint> {
    requireMerchant(ctx);
    return ctx.events.updateEndpoint(ctx.db ?? ctx.em, id, { url, eventTypes, enabled });
  }

  @Mutation(() => WebhookEndpointSecret, { description: "A new secret; the old one keeps signing beside it for 24 hours." })
  rotateWebhookEndpointSecret(@Arg("id", () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<WebhookEndpointSecret> {
    requireMerchant(ctx);
    return ctx.events.rotateSecret(ctx.db ?? ctx.em, id);
  }

  @Mutation(() => WebhookEndpoint)
  deleteWebhookEndpoint(@Arg("id", () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<WebhookEndpoint> {
    requireMerchant(ctx);
    return ctx.events.deleteEndpoint(ctx.db ?? ctx.em, id);
  }

  @Mutation(() => [EventDelivery], { description: "Sends the event again to one endpoint, or to every endpoint that takes its type." })
  redeliverEvent(
    @Arg("id", () => ID) id: string,
    @Arg("endpointId", () => ID, { nullable: true }) endpointId: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<EventDelivery[]> {
    requireMerchant(ctx);
    return ctx.events.redeliver(ctx.db ?? ctx.em, id, endpointId);
  }
}
