import type { Plan, Subscription } from "../../db/entities";

/** What a subscription takes from its plan, when started from it or moved to it. */
export function planTerms(plan: Plan): Pick<Subscription, "planCode" | "name" | "amount" | "taxFreeAmount" | "vatAmount"> {
  return { planCode: plan.code, name: plan.name, amount: plan.amount, taxFreeAmount: plan.taxFreeAmount, vatAmount: plan.vatAmount ?? null };
}
