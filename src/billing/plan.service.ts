import type { FilterQuery } from "@mikro-orm/core";
import { Plan } from "../db/entities";
import type { BillingInterval } from "../db/entities/enums";
import { BadUserInputError, NotFoundError } from "../errors";
import { guardUnique, randomId, type BillingDeps, type Ctx } from "./context";
import { decodeCursor, encodeCursor, type Page } from "./pagination";
import { checkFirst } from "./payment.service";
import { checkAmount, checkInterval, checkIntervalCount, checkPlanCode, checkTaxParts, checkText, checkTrialDays } from "./validation";

export interface CreatePlanInput {
  code: string;
  name: string;
  amount: number;
  interval: BillingInterval;
  intervalCount?: number | null;
  trialDays?: number | null;
  taxFreeAmount?: number | null;
  vatAmount?: number | null;
}

/** Plans: what a subscription started with a planCode takes its name, amount, interval and trial from. */
export class PlanService {
  constructor(private readonly deps: BillingDeps) {}

  /** Creates a plan; a code already taken (by an active or archived plan) is CONFLICT. */
  async create(ctx: Ctx, input: CreatePlanInput): Promise<Plan> {
    const amount = checkAmount("amount", input.amount, this.deps.config.maxAmount);
    const plan = ctx.em.create(Plan, {
      id: `pl${Date.now().toString(36).padStart(9, "0")}${randomId(5)}`,
      code: checkPlanCode("code", input.code),
      name: checkText("name", input.name, 200),
      amount,
      ...checkTaxParts("", amount, input.taxFreeAmount, input.vatAmount),
      interval: checkInterval("interval", input.interval),
      intervalCount: checkIntervalCount("intervalCount", input.intervalCount),
      trialDays: checkTrialDays("trialDays", input.trialDays),
    });
    await guardUnique(`A plan with code ${JSON.stringify(plan.code)}`, () => ctx.em.persistAndFlush(plan));
    return plan;
  }

  /** Archives a plan: it takes no new subscriptions; those started from it go on. Archiving twice is harmless. */
  async archive(ctx: Ctx, code: string): Promise<Plan> {
    const plan = await this.require(ctx, code, "code");
    if (plan.active) {
      plan.active = false;
      await ctx.em.flush();
    }
    return plan;
  }

  async get(ctx: Ctx, code: string): Promise<Plan | null> {
    return ctx.em.findOne(Plan, { code: checkPlanCode("code", code) });
  }

  /** The plans of these codes (stored ones: the codes of subscriptions), in one statement. */
  async getMany(ctx: Ctx, codes: readonly string[]): Promise<Plan[]> {
    return codes.length ? ctx.em.find(Plan, { code: { $in: [...codes] } }) : [];
  }

  /** The plan of `code`, or NOT_FOUND naming it. */
  async require(ctx: Ctx, code: string, field: string): Promise<Plan> {
    const plan = await ctx.em.findOne(Plan, { code: checkPlanCode(field, code) });
    if (!plan) throw new NotFoundError(`Plan ${JSON.stringify(code)}`);
    return plan;
  }

  /** The plan a new subscription is started from: BAD_USER_INPUT when it is unknown or archived. */
  async forNewSubscription(ctx: Ctx, code: string): Promise<Plan> {
    const plan = await ctx.em.findOne(Plan, { code: checkPlanCode("planCode", code) });
    if (!plan) throw new BadUserInputError("planCode", `names no plan: ${JSON.stringify(code)}`);
    if (!plan.active) throw new BadUserInputError("planCode", `names an archived plan (${plan.code}): it takes no new subscriptions`);
    return plan;
  }

  /** Oldest first (the order they were created in), keyset-paginated by id; `active` filters. */
  async list(ctx: Ctx, filter: { active?: boolean | null }, first: number, after?: string | null): Promise<Page<Plan>> {
    const limit = checkFirst(first);
    const where: FilterQuery<Plan> = {};
    if (filter.active !== null && filter.active !== undefined) where.active = filter.active;
    if (after) where.id = { $gt: decodeCursor("after", after) };
    const rows = await ctx.em.find(Plan, where, { orderBy: { id: "asc" }, limit: limit + 1 });
    const hasNextPage = rows.length > limit;
    const nodes = hasNextPage ? rows.slice(0, limit) : rows;
    return { nodes, pageInfo: { hasNextPage, endCursor: nodes.length ? encodeCursor(nodes[nodes.length - 1].id) : null } };
  }
}

