import type { EntityManager } from "@mikro-orm/postgresql";
import { LockMode } from "@mikro-orm/core";
import { PriceChange } from "../entities";
import { PriceChangeStatus } from "../entities/enums";
import { query, type Scope } from "../tx";

/**
 * For each subscription asked about, the answered price change (accepted,
 * declined or expired) that starts at or before its `period` and was not
 * applied yet: what the claim of that period's renewal must follow. One
 * statement for all of them, in the claims' transaction, under their
 * subscriptions' locks; the unapplied answered changes are locked themselves.
 * Keyed by subscription id; a subscription without one is absent.
 */
export async function answeredChangesFor(em: EntityManager, questions: readonly { subscriptionId: string; period: number }[]): Promise<Map<string, PriceChange>> {
  const found = new Map<string, PriceChange>();
  if (questions.length === 0) return found;
  const rows = await em.find(
    PriceChange,
    {
      subscriptionId: { $in: [...new Set(questions.map((q) => q.subscriptionId))] },
      appliedAt: null,
      status: { $in: [PriceChangeStatus.ACCEPTED, PriceChangeStatus.DECLINED, PriceChangeStatus.EXPIRED] },
    },
    { orderBy: { id: "desc" }, lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true },
  );
  for (const q of questions) {
    const change = rows.find((c) => c.subscriptionId === q.subscriptionId && c.effectivePeriod <= q.period);
    if (change) found.set(q.subscriptionId, change);
  }
  return found;
}

/** The change in flight for a subscription: waiting for an answer, or accepted and not applied yet. */
export async function openChange(em: EntityManager, subscriptionId: string): Promise<PriceChange | null> {
  return em.findOne(PriceChange, {
    subscriptionId,
    $or: [{ status: PriceChangeStatus.PENDING }, { status: PriceChangeStatus.ACCEPTED, appliedAt: null }],
  });
}

/** A change locked for an answer (after its subscription, as lockBillingRows orders the billing rows). */
export async function lockChange(em: EntityManager, id: string): Promise<PriceChange | null> {
  return em.findOne(PriceChange, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
}

/** Unanswered changes whose answers closed at `closesBefore` (their renewal is a margin away), oldest first. */
export async function unansweredBefore(em: EntityManager, closesBefore: Date, marginMs: number, limit: number): Promise<PriceChange[]> {
  return em.find(
    PriceChange,
    { status: PriceChangeStatus.PENDING, effectiveAt: { $lte: new Date(closesBefore.getTime() + marginMs) } },
    { orderBy: { effectiveAt: "asc" }, limit },
  );
}

/**
 * Changes still in flight at subscriptions that ended (canceled by the
 * merchant or the customer meanwhile) are CANCELED, in one statement.
 * Returns how many.
 */
export async function cancelChangesOfEndedSubscriptions(scope: Scope, now: Date): Promise<number> {
  const rows = await query<{ id: string }>(
    scope,
    `update "price_changes" c set "status" = 'CANCELED', "responded_at" = coalesce(c."responded_at", ?), "responded_by" = coalesce(c."responded_by", 'subscription ended')
       from "subscriptions" s
      where s."id" = c."subscription_id" and s."status" = 'CANCELED'
        and (c."status" = 'PENDING' or (c."status" = 'ACCEPTED' and c."applied_at" is null))
      returning c."id"`,
    [now],
  );
  return rows.length;
}

/** Declined or expired changes whose subscription was not yet set to end (an earlier attempt failed, or its renewal is still ahead). */
export async function refusedUnapplied(em: EntityManager, limit: number): Promise<PriceChange[]> {
  return em.find(
    PriceChange,
    { status: { $in: [PriceChangeStatus.DECLINED, PriceChangeStatus.EXPIRED] }, appliedAt: null },
    { orderBy: { effectiveAt: "asc" }, limit },
  );
}
