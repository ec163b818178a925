import { CardService } from "./card.service";
import type { BillingDeps } from "./context";
import { PaymentService } from "./payment.service";
import { SubscriptionService } from "./subscription.service";
import { WebhookService } from "./webhook.service";

export interface Services {
  cards: CardService;
  payments: PaymentService;
  subscriptions: SubscriptionService;
  webhooks: WebhookService;
}

/** Wires the billing services once per process; they hold no per-request state. */
export function createServices(deps: BillingDeps): Services {
  const cards = new CardService(deps);
  const payments = new PaymentService(deps, cards);
  const subscriptions = new SubscriptionService(deps, cards, payments);
  const webhooks = new WebhookService(payments);
  webhooks.setAfterVerification((ctx, payment, previous, v) => subscriptions.onPaymentVerified(ctx, payment, previous, v));
  return { cards, payments, subscriptions, webhooks };
}
