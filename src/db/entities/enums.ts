import { registerEnumType } from "type-graphql";

export enum CardStatus {
  ACTIVE = "ACTIVE",
  DELETED = "DELETED",
}

export enum CardType {
  CREDIT = "CREDIT",
  CHECK = "CHECK",
}

export enum PaymentStatus {
  PENDING = "PENDING",
  SCHEDULED = "SCHEDULED",
  READY = "READY",
  PAID = "PAID",
  FAILED = "FAILED",
  CANCELLED = "CANCELLED",
  REVOKED = "REVOKED",
  FORGERY_SUSPECTED = "FORGERY_SUSPECTED",
}

/** How a payment was (or will be) made. */
export enum PaymentKind {
  /** A billing-key charge (`/subscribe/payments/again`). */
  AGAIN = "AGAIN",
  /** A schedule registered with Iamport. */
  SCHEDULE = "SCHEDULE",
  /** A browser checkout (IMP.request_pay) prepared by preparePayment or first seen on a webhook. */
  CHECKOUT = "CHECKOUT",
}

export enum SubscriptionStatus {
  INCOMPLETE = "INCOMPLETE",
  TRIALING = "TRIALING",
  ACTIVE = "ACTIVE",
  PAST_DUE = "PAST_DUE",
  UNPAID = "UNPAID",
  CANCELED = "CANCELED",
  PAUSED = "PAUSED",
}

/** What a cancellation gives back of the paid period. */
export enum CancellationRefund {
  NONE = "NONE",
  PRORATED = "PRORATED",
  FULL = "FULL",
}

/** How a plan change is billed. */
export enum Proration {
  CHARGE_NOW = "CHARGE_NOW",
  NEXT_PERIOD = "NEXT_PERIOD",
}

/**
 * Subscriptions that are or may be charged (a PAUSED one charges again when it
 * resumes): a second one of the same name needs allowDuplicate, and deleting the
 * card cancels them or is refused.
 */
export const LIVE_SUBSCRIPTION_STATUSES = [
  SubscriptionStatus.INCOMPLETE,
  SubscriptionStatus.TRIALING,
  SubscriptionStatus.ACTIVE,
  SubscriptionStatus.PAST_DUE,
  SubscriptionStatus.PAUSED,
];

/** Where a price change stands (PriceChange). */
export enum PriceChangeStatus {
  PENDING = "PENDING",
  ACCEPTED = "ACCEPTED",
  DECLINED = "DECLINED",
  EXPIRED = "EXPIRED",
  CANCELED = "CANCELED",
}

export enum BillingInterval {
  DAY = "DAY",
  WEEK = "WEEK",
  MONTH = "MONTH",
  YEAR = "YEAR",
}

registerEnumType(CardStatus, { name: "CardStatus" });
registerEnumType(CardType, { name: "CardType" });
registerEnumType(PaymentStatus, {
  name: "PaymentStatus",
  valuesConfig: {
    PENDING: { description: "Order recorded; the charge has not been confirmed by the payment provider yet." },
    SCHEDULED: { description: "Registered with the payment provider's schedule; it will be attempted at scheduledAt." },
    READY: { description: "Virtual account issued; waiting for the deposit." },
    REVOKED: { description: "A schedule that was revoked before it ran." },
    FORGERY_SUSPECTED: { description: "The payment provider reports an amount that differs from the order: never treated as paid." },
  },
});
registerEnumType(SubscriptionStatus, {
  name: "SubscriptionStatus",
  valuesConfig: {
    INCOMPLETE: { description: "The first payment has not been confirmed yet." },
    TRIALING: { description: "In a free trial; nothing charged yet." },
    PAST_DUE: { description: "The last renewal failed; retries are scheduled." },
    UNPAID: { description: "Retries are exhausted without a payment." },
    PAUSED: { description: "No charges until resumed; nothing scheduled at the payment provider." },
  },
});
registerEnumType(BillingInterval, { name: "BillingInterval" });
registerEnumType(Proration, {
  name: "Proration",
  valuesConfig: {
    CHARGE_NOW: { description: "Charge the difference for the rest of the period now; the new amount from the next renewal." },
    NEXT_PERIOD: { description: "The new plan from the next renewal; nothing charged or refunded now." },
  },
});
registerEnumType(CancellationRefund, {
  name: "CancellationRefund",
  valuesConfig: {
    PRORATED: { description: "The unused days of the paid period, in whole won, computed in BILLING_TIME_ZONE." },
  },
});
registerEnumType(PriceChangeStatus, {
  name: "PriceChangeStatus",
  valuesConfig: {
    PENDING: { description: "Waiting for the customer's answer." },
    EXPIRED: { description: "No answer before it was due: the subscription ends instead of charging the new price." },
  },
});
