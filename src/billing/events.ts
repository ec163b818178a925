import type { EntityManager } from "@mikro-orm/postgresql";
import type { Payment, Subscription } from "../db/entities";
import { paymentEventTypes, subscriptionEventTypes, type PaymentState, type SubscriptionState } from "../events/mapping";
import { paymentData, subscriptionData } from "../events/present";
import { recordEvents, type RecordEventInput } from "../events/record";

/** What of a payment decides its events, as it is now (taken before a change, compared after it). */
export function paymentState(p: Pick<Payment, "status" | "cancelledAmount">): PaymentState {
  return { status: p.status, cancelledAmount: p.cancelledAmount };
}

/** What of a subscription decides its events, as it is now. */
export function subscriptionState(s: Pick<Subscription, "status" | "currentPeriod" | "cancelAtPeriodEnd">): SubscriptionState {
  return { status: s.status, currentPeriod: s.currentPeriod, cancelAtPeriodEnd: s.cancelAtPeriodEnd };
}

/** The events of a payment's change, `before` null for a payment this change created. */
export function paymentChangeEvents(payment: Payment, before: PaymentState | null): RecordEventInput[] {
  const subscriptionId = payment.subscription?.id ?? null;
  return paymentEventTypes(before, paymentState(payment)).map((type) => ({
    type,
    customerUid: payment.customerUid ?? null,
    subscriptionId,
    merchantUid: payment.merchantUid,
    data: paymentData(payment, subscriptionId),
  }));
}

/** The events of a subscription's change, `before` null for a new subscription. */
export function subscriptionChangeEvents(sub: Subscription, before: SubscriptionState | null): RecordEventInput[] {
  return subscriptionEventTypes(before, subscriptionState(sub)).map((type) => ({ type, customerUid: sub.customerUid, subscriptionId: sub.id, data: subscriptionData(sub) }));
}

/**
 * Records the events of a payment's change in the transaction of `em` (the
 * outbox: they commit with the change or not at all), `before` null for a
 * payment this change created. The row must be flushed: its data is the
 * payment as the API shows it after the change.
 */
export async function recordPaymentChange(em: EntityManager, payment: Payment, before: PaymentState | null): Promise<void> {
  await recordEvents(em, paymentChangeEvents(payment, before));
}

/** Records the events of a subscription's change in the transaction of `em`, `before` null for a new subscription. */
export async function recordSubscriptionChange(em: EntityManager, sub: Subscription, before: SubscriptionState | null): Promise<void> {
  await recordEvents(em, subscriptionChangeEvents(sub, before));
}
