import { LockMode, type FilterQuery } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { Payment, Subscription } from "../entities";

export interface LockedRows {
  payments: Payment[];
  subscriptions: Subscription[];
}

/**
 * The one lock order of the billing core: the payments named, then the
 * subscriptions (those given and those of the locked payments), each table
 * in id order. Every flow that changes a payment's or a subscription's
 * billing state (settling an answer, cancelling, expiring, revoking) locks
 * through here, so two flows can never wait on each other in a cycle.
 * A flow that also locks a price change (price-changes.ts) takes it after
 * these. Rows are re-read once locked (`refresh`): what an earlier read of the
 * unit of work held may be stale. Runs in the caller's transaction (`em`).
 */
export async function lockBillingRows(em: EntityManager, payments: FilterQuery<Payment> | null, subscriptionIds: readonly string[] = []): Promise<LockedRows> {
  const locked = payments ? await em.find(Payment, payments, { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: "asc" }, refresh: true }) : [];
  const ids = new Set(subscriptionIds);
  for (const p of locked) if (p.subscription) ids.add(p.subscription.id);
  const subscriptions =
    ids.size > 0
      ? await em.find(Subscription, { id: { $in: [...ids] } }, { lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: "asc" }, refresh: true })
      : [];
  return { payments: locked, subscriptions };
}

/** The merchant_uids of a subscription's charges after (period, attempt): a later period, or a later attempt of it. */
export async function laterCharges(em: EntityManager, subscriptionId: string, period: number, attempt: number): Promise<string[]> {
  const rows = await em.find(Payment, { subscription: subscriptionId, $or: [{ period: { $gt: period } }, { period, attempt: { $gt: attempt } }] });
  return rows.map((p) => p.merchantUid);
}
