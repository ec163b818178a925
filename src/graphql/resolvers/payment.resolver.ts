import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from "type-graphql";
import { Payment, Subscription } from "../../db/entities";
import { PaymentStatus } from "../../db/entities/enums";
import type { PaymentView } from "../../billing/payment.service";
import { owned, ownCustomerFilter, requireMerchant } from "../authz";
import type { GraphQLContext } from "../context";
import { loaders } from "../loaders";
import {
  ChargeAgainInput,
  PaymentConnection,
  PaymentVerification,
  PreparePaymentInput,
  RefundPaymentInput,
  SchedulePaymentsInput,
  VerificationOutcome,
  VerifyPaymentInput,
} from "../types";

@Resolver(() => Payment)
export class PaymentResolver {
  @Query(() => Payment, { nullable: true })
  async payment(
    @Arg("merchantUid", () => String, { nullable: true }) merchantUid: string | null,
    @Arg("impUid", () => String, { nullable: true }) impUid: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<PaymentView | null> {
    return owned(ctx, await ctx.services.payments.find(ctx, { merchantUid, impUid }));
  }

  @Query(() => PaymentConnection)
  async payments(
    @Arg("customerUid", () => String, { nullable: true }) customerUid: string | null,
    @Arg("subscriptionId", () => ID, { nullable: true }) subscriptionId: string | null,
    @Arg("status", () => PaymentStatus, { nullable: true }) status: PaymentStatus | null,
    @Arg("first", () => Int, { nullable: true, defaultValue: 20 }) first: number,
    @Arg("after", () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<PaymentConnection> {
    const ownCustomer = ownCustomerFilter(ctx, customerUid);
    if (subscriptionId && ctx.caller.kind === "customer") owned(ctx, await ctx.services.subscriptions.get(ctx, subscriptionId));
    return ctx.services.payments.list(ctx, { customerUid: ownCustomer, subscriptionId, status }, first, after);
  }

  @FieldResolver(() => Subscription, { nullable: true })
  subscription(@Root() payment: { subscription?: { id: string } | null }, @Ctx() ctx: GraphQLContext): Promise<Subscription | null> | null {
    if (!payment.subscription) return null;
    return loaders(ctx).subscription.load(payment.subscription.id);
  }

  @Mutation(() => Payment, {
    description: "Record an order before a browser checkout (IMP.request_pay), so verifyPayment has an amount to compare.",
  })
  preparePayment(@Arg("input", () => PreparePaymentInput) input: PreparePaymentInput, @Ctx() ctx: GraphQLContext): Promise<Payment> {
    requireMerchant(ctx);
    return ctx.services.payments.prepare(ctx, input);
  }

  @Mutation(() => Payment)
  chargeAgain(@Arg("input", () => ChargeAgainInput) input: ChargeAgainInput, @Ctx() ctx: GraphQLContext): Promise<Payment> {
    requireMerchant(ctx);
    return ctx.services.payments.chargeAgain(ctx, input);
  }

  @Mutation(() => [Payment])
  schedulePayments(@Arg("input", () => SchedulePaymentsInput) input: SchedulePaymentsInput, @Ctx() ctx: GraphQLContext): Promise<Payment[]> {
    requireMerchant(ctx);
    return ctx.services.payments.schedule(ctx, input.customerUid, input.schedules);
  }

  @Mutation(() => [Payment])
  unschedulePayments(
    @Arg("customerUid", () => String) customerUid: string,
    @Arg("merchantUids", () => [String], { nullable: true }) merchantUids: string[] | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<Payment[]> {
    requireMerchant(ctx);
    return ctx.services.payments.unschedule(ctx, customerUid, merchantUids);
  }

  @Mutation(() => PaymentVerification)
  async verifyPayment(@Arg("input", () => VerifyPaymentInput) input: VerifyPaymentInput, @Ctx() ctx: GraphQLContext): Promise<PaymentVerification> {
    requireMerchant(ctx);
    const r = await ctx.services.payments.verify(ctx, input.impUid, input.merchantUid);
    return { outcome: r.outcome as VerificationOutcome, message: r.message, payment: r.payment };
  }

  @Mutation(() => Payment)
  refundPayment(@Arg("input", () => RefundPaymentInput) input: RefundPaymentInput, @Ctx() ctx: GraphQLContext): Promise<Payment> {
    requireMerchant(ctx);
    return ctx.services.payments.refund(ctx, input);
  }
}
