import { Arg, Ctx, Int, Mutation, Query, Resolver } from "type-graphql";
import { Plan } from "../../db/entities";
import { requireMerchant } from "../authz";
import type { GraphQLContext } from "../context";
import { CreatePlanInput, PlanConnection } from "../types";

/** Plans: any caller may read them (a customer's app shows what it can subscribe to); merchant keys create and archive. */
@Resolver(() => Plan)
export class PlanResolver {
  @Query(() => PlanConnection)
  plans(
    @Arg("first", () => Int, { nullable: true, defaultValue: 20 }) first: number,
    @Arg("after", () => String, { nullable: true }) after: string | null,
    @Arg("active", () => Boolean, { nullable: true }) active: boolean | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<PlanConnection> {
    return ctx.services.plans.list(ctx, { active }, first, after);
  }

  @Query(() => Plan, { nullable: true })
  plan(@Arg("code", () => String) code: string, @Ctx() ctx: GraphQLContext): Promise<Plan | null> {
    return ctx.services.plans.get(ctx, code);
  }

  @Mutation(() => Plan)
  createPlan(@Arg("input", () => CreatePlanInput) input: CreatePlanInput, @Ctx() ctx: GraphQLContext): Promise<Plan> {
    requireMerchant(ctx);
    return ctx.services.plans.create(ctx, input);
  }

  @Mutation(() => Plan)
  archivePlan(@Arg("code", () => String) code: string, @Ctx() ctx: GraphQLContext): Promise<Plan> {
    requireMerchant(ctx);
    return ctx.services.plans.archive(ctx, code);
  }
}
