import { CardService } from "./card.service";
import type { BillingDeps } from "./context";
import { PaymentService } from "./payment.service";
import { FastRenewal } from "./renewal";
import { SubscriptionService } from "./subscription.service";
import { WebhookService } from "./webhook.service";

export interface Services {
  cards: CardService;
  payments: PaymentService;
  subscriptions: SubscriptionService;
  webhooks: WebhookService;
}

/** Optional observers (metrics) of settled subscription charges. */
export interface BillingObservers {
  /** A subscription charge changed to PAID, FAILED or FORGERY_SUSPECTED (attempt 1 = renewal, 2.. = retry). */
  subscriptionCharge?(status: string, attempt: number): void;
  /** Renewals settled together in one transaction of the fast path (renewal.ts). */
  renewalBatch?(size: number): void;
  /** Events recorded together by one insert into the inbox (webhook.service.ts). */
  inboxBatch?(size: number): void;
}

/** Wires the billing services once per process; they hold no per-request state. */
export function createServices(deps: BillingDeps, observers: BillingObservers = {}): Services {
  const cards = new CardService(deps);
  const payments = new PaymentService(deps, cards);
  const subscriptions = new SubscriptionService(deps, cards, payments);
  cards.setReleaseSubscriptions((ctx, customerUid, cancel) => subscriptions.releaseCard(ctx, customerUid, cancel));
  const webhooks = new WebhookService(payments, observers);
  webhooks.setAfterVerification(async (ctx, payment, previous, v) => {
    await subscriptions.onPaymentVerified(ctx, payment, previous, v);
    if (payment.subscription && payment.status !== previous) observers.subscriptionCharge?.(payment.status, payment.attempt ?? 1);
  });
  const fast = new FastRenewal(deps, payments, observers);
  webhooks.fastRenewal = (ctx, ip, fetchedAt, eventId) => fast.run(ctx, ip, fetchedAt, eventId);
  return { cards, payments, subscriptions, webhooks };
}
