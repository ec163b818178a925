import { PaymentStatus as P, SubscriptionStatus as S } from "../../db/entities/enums";

/**
 * Every status a payment may move to from each status, in one table. A move
 * to the same status (a partial refund keeps PAID) is always allowed.
 * FORGERY_SUSPECTED is final: a later answer never lifts it. A FAILED or
 * REVOKED row may still become PAID: Iamport is the truth about money, and
 * another attempt of the same order (or a schedule that ran before its
 * revocation arrived) may have paid.
 */
export const PAYMENT_TRANSITIONS: Readonly<Record<P, readonly P[]>> = {
  [P.PENDING]: [P.SCHEDULED, P.READY, P.PAID, P.FAILED, P.CANCELLED, P.REVOKED, P.FORGERY_SUSPECTED],
  [P.SCHEDULED]: [P.PAID, P.FAILED, P.CANCELLED, P.REVOKED, P.FORGERY_SUSPECTED],
  [P.READY]: [P.PAID, P.FAILED, P.CANCELLED, P.FORGERY_SUSPECTED],
  [P.PAID]: [P.CANCELLED, P.FORGERY_SUSPECTED],
  [P.FAILED]: [P.PAID, P.READY, P.CANCELLED, P.FORGERY_SUSPECTED],
  [P.CANCELLED]: [P.FORGERY_SUSPECTED],
  [P.REVOKED]: [P.PAID, P.FAILED, P.CANCELLED, P.FORGERY_SUSPECTED],
  [P.FORGERY_SUSPECTED]: [],
};

/**
 * Every status a subscription may move to from each status. CANCELED is
 * final. UNPAID may come back to ACTIVE: a retry whose outcome was unknown
 * may turn out paid after dunning ended.
 */
export const SUBSCRIPTION_TRANSITIONS: Readonly<Record<S, readonly S[]>> = {
  [S.INCOMPLETE]: [S.ACTIVE, S.CANCELED],
  // A trial ends in its first charge (paid: ACTIVE, declined: dunning) or, without consent, CANCELED.
  [S.TRIALING]: [S.ACTIVE, S.PAST_DUE, S.UNPAID, S.CANCELED],
  [S.ACTIVE]: [S.PAST_DUE, S.UNPAID, S.CANCELED, S.PAUSED],
  [S.PAST_DUE]: [S.ACTIVE, S.UNPAID, S.CANCELED],
  [S.UNPAID]: [S.ACTIVE, S.CANCELED],
  [S.CANCELED]: [],
  // Resumed: ACTIVE once the new period's charge is paid.
  [S.PAUSED]: [S.ACTIVE, S.CANCELED],
};

export function paymentMayMove(from: P, to: P): boolean {
  return from === to || PAYMENT_TRANSITIONS[from].includes(to);
}

export function subscriptionMayMove(from: S, to: S): boolean {
  return from === to || SUBSCRIPTION_TRANSITIONS[from].includes(to);
}

/** Statuses Iamport can still change without our asking (reconciliation looks at these). */
export const OPEN_PAYMENT_STATUSES: readonly P[] = [P.PENDING, P.SCHEDULED, P.READY];

/** A subscription's charges that may still run at Iamport: a cancellation revokes these. */
export const OPEN_CHARGE_STATUSES: readonly P[] = [P.SCHEDULED, P.PENDING];
