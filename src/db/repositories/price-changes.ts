import type { EntityManager } from "@mikro-orm/postgresql";
import { LockMode } from "@mikro-orm/core";
import { PriceChange } from "../entities";
import { PriceChangeStatus } from "../entities/enums";

/**
 * The answered price change (accepted, declined or expired) that starts at
 * or before `period` and was not applied yet: what the claim of that
 * period's renewal must follow. Read in the claim's transaction, under the
 * subscription's lock, and locked itself.
 */
export async function answeredChangeFor(em: EntityManager, subscriptionId: string, period: number): Promise<PriceChange | null> {
  return em.findOne(
    PriceChange,
    {
      subscriptionId,
      appliedAt: null,
      effectivePeriod: { $lte: period },
      status: { $in: [PriceChangeStatus.ACCEPTED, PriceChangeStatus.DECLINED, PriceChangeStatus.EXPIRED] },
    },
    { orderBy: { id: "desc" }, lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true },
  );
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
