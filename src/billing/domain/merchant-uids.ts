/**
 * The prefix of every subscription charge's merchant_uid. It is reserved:
 * an order a caller names with it (chargeAgain, schedulePayments,
 * preparePayment) could otherwise be taken for a subscription's charge.
 */
export const SUBSCRIPTION_UID_PREFIX = "sub_";

/** Deterministic merchant_uid of a subscription charge: the database key that makes a renewal happen once. */
export function renewalMerchantUid(subscriptionId: string, period: number, attempt: number): string {
  return `${SUBSCRIPTION_UID_PREFIX}${subscriptionId}_p${period}_a${attempt}`;
}

/** Whether callers may not name an order this way (see SUBSCRIPTION_UID_PREFIX). */
export function isReservedMerchantUid(merchantUid: string): boolean {
  return merchantUid.startsWith(SUBSCRIPTION_UID_PREFIX);
}
