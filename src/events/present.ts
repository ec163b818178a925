import type { EntityManager } from "@mikro-orm/postgresql";
import type { Card, Payment, Subscription } from "../db/entities";

/** A card as the GraphQL API shows it (Card): the masked number Iamport returned, never card data. */
export function cardData(c: Card): Record<string, unknown> {
  return {
    customerUid: c.customerUid,
    customerId: c.customerId ?? null,
    cardName: c.cardName ?? null,
    cardNumberMasked: c.cardNumberMasked ?? null,
    cardType: c.cardType ?? null,
    pgProvider: c.pgProvider ?? null,
    status: c.status,
    createdAt: c.createdAt.toISOString(),
    updatedAt: c.updatedAt.toISOString(),
    replacedAt: c.replacedAt ? c.replacedAt.toISOString() : null,
    replacements: c.replacements,
  };
}

const iso = (d: Date | string | null | undefined): string | null => (d == null ? null : d instanceof Date ? d.toISOString() : new Date(d).toISOString());

type PaymentFields = Pick<
  Payment,
  "merchantUid" | "impUid" | "customerUid" | "name" | "amount" | "paidAmount" | "cancelledAmount" | "currency" | "status" | "failReason" | "receiptUrl"
> & {
  scheduledAt?: Date | string | null;
  paidAt?: Date | string | null;
  failedAt?: Date | string | null;
  cancelledAt?: Date | string | null;
  createdAt: Date | string;
  updatedAt: Date | string;
};

/** A payment as the GraphQL API shows it (Payment), its subscription by id: the `data` of payment.* events. */
export function paymentData(p: PaymentFields, subscriptionId: string | null): Record<string, unknown> {
  return {
    merchantUid: p.merchantUid,
    impUid: p.impUid ?? null,
    customerUid: p.customerUid ?? null,
    subscriptionId,
    name: p.name,
    amount: p.amount,
    paidAmount: p.paidAmount ?? null,
    cancelledAmount: p.cancelledAmount,
    currency: p.currency,
    status: p.status,
    failReason: p.failReason ?? null,
    scheduledAt: iso(p.scheduledAt),
    paidAt: iso(p.paidAt),
    failedAt: iso(p.failedAt),
    cancelledAt: iso(p.cancelledAt),
    receiptUrl: p.receiptUrl ?? null,
    createdAt: iso(p.createdAt),
    updatedAt: iso(p.updatedAt),
  };
}

/** A subscription as the GraphQL API shows it (Subscription): the `data` of subscription.* events. */
export function subscriptionData(s: Subscription): Record<string, unknown> {
  return {
    id: s.id,
    customerUid: s.customerUid,
    name: s.name,
    amount: s.amount,
    interval: s.interval,
    intervalCount: s.intervalCount,
    status: s.status,
    statusReason: s.statusReason ?? null,
    currentPeriodStart: iso(s.currentPeriodStart),
    currentPeriodEnd: iso(s.currentPeriodEnd),
    nextPaymentAt: iso(s.nextPaymentAt),
    cancelAtPeriodEnd: s.cancelAtPeriodEnd,
    canceledAt: iso(s.canceledAt),
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
  };
}

/**
 * Runs fn in a transaction of `em` itself (begin/commit on the same
 * EntityManager, whose entities fn changes), so that a flush and the events
 * recorded beside it commit together or not at all.
 */
export async function withTransaction<T>(em: EntityManager, fn: () => Promise<T>): Promise<T> {
  if (em.isInTransaction()) return fn();
  await em.begin();
  try {
    const result = await fn();
    await em.commit();
    return result;
  } catch (err) {
    await em.rollback().catch(() => undefined);
    throw err;
  }
}
