import type { EntityManager } from "@mikro-orm/postgresql";
import type { Card } from "../db/entities";

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
