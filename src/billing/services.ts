import { CardService } from "./card.service";
import type { BillingDeps } from "./context";
import { PaymentService } from "./payment.service";
import { PlanService } from "./plan.service";
import { ScheduleRegistrar } from "./payments/schedules";
import { Settlement, type BillingObservers } from "./settlement";
import { SubscriptionService } from "./subscription.service";
import { WebhookService } from "./webhook.service";

export type { BillingObservers } from "./settlement";

export interface Services {
  cards: CardService;
  payments: PaymentService;
  subscriptions: SubscriptionService;
  plans: PlanService;
  webhooks: WebhookService;
  /** The executor every payment outcome goes through (reconciliation uses it directly). */
  settlement: Settlement;
  schedules: ScheduleRegistrar;
}

/** Wires the billing services once per process; they hold no per-request state. */
export function createServices(deps: BillingDeps, observers: BillingObservers = {}): Services {
  const schedules = new ScheduleRegistrar(deps);
  const settlement = new Settlement(deps, schedules, observers);
  const payments = new PaymentService(deps, settlement, schedules);
  const plans = new PlanService(deps);
  const subscriptions = new SubscriptionService(deps, settlement, schedules, plans);
  const cards = new CardService(deps, (ctx, customerUid, cancel) => subscriptions.releaseCard(ctx, customerUid, cancel));
  const webhooks = new WebhookService(payments, observers);
  return { cards, payments, subscriptions, plans, webhooks, settlement, schedules };
}
