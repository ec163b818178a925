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

export interface LaterCharges {
  /** The merchant_uids of the subscription's charges after (period, attempt): a later period, or a later attempt of it. */
  later: string[];
  /** The rows holding the merchant_uids asked for, whichever order they belong to. */
  byMerchantUid: Map<string, Payment>;
}

/** A subscription's charge whose later charges are asked for, and the merchant_uids of the charges that may come next. */
export interface LaterChargesQuestion {
  subscriptionId: string;
  period: number;
  attempt: number;
  merchantUids: readonly string[];
}

/**
 * For each subscription's charge asked about: the subscription's charges
 * after (period, attempt), and the rows holding `merchantUids` (the charges
 * that may come next). One statement for all of them: the renewal steps of a
 * batch check that each charge is the latest and look up each next charge's
 * row in one round trip. Keyed by subscription id.
 */
export async function laterCharges(em: EntityManager, questions: readonly LaterChargesQuestion[]): Promise<Map<string, LaterCharges>> {
  const answers = new Map<string, LaterCharges>();
  if (questions.length === 0) return answers;
  const laterOf = (q: LaterChargesQuestion) => ({ subscription: q.subscriptionId, $or: [{ period: { $gt: q.period } }, { period: q.period, attempt: { $gt: q.attempt } }] });
  const merchantUids = [...new Set(questions.flatMap((q) => q.merchantUids))];
  const rows = await em.find(Payment, { $or: [...questions.map(laterOf), ...(merchantUids.length ? [{ merchantUid: { $in: merchantUids } }] : [])] });
  for (const q of questions) {
    const isLater = (p: Payment) =>
      p.subscription?.id === q.subscriptionId &&
      p.period !== null &&
      p.period !== undefined &&
      (p.period > q.period || (p.period === q.period && p.attempt !== null && p.attempt !== undefined && p.attempt > q.attempt));
    const wanted = new Set(q.merchantUids);
    answers.set(q.subscriptionId, {
      later: rows.filter(isLater).map((p) => p.merchantUid),
      byMerchantUid: new Map(rows.filter((p) => wanted.has(p.merchantUid)).map((p) => [p.merchantUid, p])),
    });
  }
  return answers;
}
