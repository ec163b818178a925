import type { FilterQuery } from "@mikro-orm/core";
import { Subscription } from "../../db/entities";
import type { SubscriptionStatus } from "../../db/entities/enums";
import type { Ctx } from "../context";
import { checkFirst } from "../payment.service";
import { decodeCursor, encodeCursor, type Page } from "../pagination";
import { checkUid } from "../validation";

export async function get(ctx: Ctx, id: string): Promise<Subscription | null> {
  return ctx.em.findOne(Subscription, { id: checkUid("id", id) });
}

/** The subscriptions of these ids (stored ones: a list's rows' references), in one statement. */
export async function getMany(ctx: Ctx, ids: readonly string[]): Promise<Subscription[]> {
  return ids.length ? ctx.em.find(Subscription, { id: { $in: [...ids] } }) : [];
}

/** Newest first, keyset-paginated by creation time and id. */
export async function list(
  ctx: Ctx,
  filter: { customerUid?: string | null; status?: SubscriptionStatus | null },
  first: number,
  after?: string | null,
): Promise<Page<Subscription>> {
  const limit = checkFirst(first);
  const where: FilterQuery<Subscription> = {};
  if (filter.customerUid) where.customerUid = checkUid("customerUid", filter.customerUid);
  if (filter.status) where.status = filter.status;
  if (after) where.id = { $lt: decodeCursor("after", after) };
  const rows = await ctx.em.find(Subscription, where, { orderBy: { id: "desc" }, limit: limit + 1 });
  const hasNextPage = rows.length > limit;
  const nodes = hasNextPage ? rows.slice(0, limit) : rows;
  return { nodes, pageInfo: { hasNextPage, endCursor: nodes.length ? encodeCursor(nodes[nodes.length - 1].id) : null } };
}
