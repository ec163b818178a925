import { PaymentStatus, SubscriptionStatus } from "../db/entities/enums";
import type { EventType } from "./types";

/** What of a payment decides its events. */
export interface PaymentState {
  status: PaymentStatus;
  cancelledAmount: number;
}

/** What of a subscription decides its events. */
export interface SubscriptionState {
  status: SubscriptionStatus;
  /** The period number (0 before the first payment): a higher one after a payment is a renewal. */
  currentPeriod: number;
  cancelAtPeriodEnd: boolean;
}

/**
 * The events of one payment's change, `before` null for a payment first
 * recorded by this change. A status reached again (a late webhook repeating
 * PAID) is no event; a higher cancelled amount is a refund, partial or full.
 */
export function paymentEventTypes(before: PaymentState | null, after: PaymentState): EventType[] {
  const types: EventType[] = [];
  const changed = before?.status !== after.status;
  if (changed && after.status === PaymentStatus.PAID) types.push("payment.paid");
  if (changed && after.status === PaymentStatus.FAILED) types.push("payment.failed");
  if (changed && after.status === PaymentStatus.FORGERY_SUSPECTED) types.push("payment.forgery_suspected");
  if (after.cancelledAmount > (before?.cancelledAmount ?? 0)) types.push("payment.refunded");
  return types;
}

/**
 * The events of one subscription's change, `before` null for a subscription
 * created by this change. A first paid period is `started`; a later period
 * paid while ACTIVE is `renewed`, and paid out of PAST_DUE (or UNPAID) is
 * `recovered`.
 */
export function subscriptionEventTypes(before: SubscriptionState | null, after: SubscriptionState): EventType[] {
  const types: EventType[] = [];
  const from = before?.status;
  const to = after.status;
  const paidPeriod = after.currentPeriod > (before?.currentPeriod ?? 0);
  if (to === SubscriptionStatus.ACTIVE) {
    if (from === undefined || from === SubscriptionStatus.INCOMPLETE) types.push("subscription.started");
    else if (from === SubscriptionStatus.PAST_DUE || from === SubscriptionStatus.UNPAID) types.push("subscription.recovered");
    else if (paidPeriod) types.push("subscription.renewed");
  }
  // A free trial starts the subscription; its first paid period (TRIALING to ACTIVE) is then a renewal.
  if (to === SubscriptionStatus.TRIALING && from === undefined) types.push("subscription.started");
  if (to !== from) {
    if (to === SubscriptionStatus.PAST_DUE) types.push("subscription.past_due");
    if (to === SubscriptionStatus.UNPAID) types.push("subscription.unpaid");
    if (to === SubscriptionStatus.CANCELED) types.push("subscription.canceled");
  }
  if (to !== SubscriptionStatus.CANCELED && after.cancelAtPeriodEnd && !before?.cancelAtPeriodEnd) types.push("subscription.cancel_scheduled");
  return types;
}
