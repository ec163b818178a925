import { ForbiddenError } from "../errors";
import { requireActingFor } from "../security/authz";
import type { GraphQLContext } from "./context";

/**
 * Who may do what, decided at the entry point (resolvers): merchant keys may do
 * everything; a customer token only acts on its own customerUid. The table in
 * README.md ("Who may call what") lists every operation.
 */
export function requireMerchant(ctx: GraphQLContext): void {
  if (ctx.caller.kind !== "merchant") throw new ForbiddenError("This operation needs a merchant API key");
}

export function requireCustomer(ctx: GraphQLContext, customerUid: string | null | undefined): void {
  requireActingFor(ctx.caller, customerUid);
}

/** The entity when the caller may see it; FORBIDDEN when it belongs to another customer. */
export function owned<T extends { customerUid?: string | null }>(ctx: GraphQLContext, entity: T | null): T | null {
  if (entity) requireCustomer(ctx, entity.customerUid);
  return entity;
}

/** For list filters: a customer's lists are always restricted to itself. */
export function ownCustomerFilter(ctx: GraphQLContext, customerUid: string | null | undefined): string | null {
  if (ctx.caller.kind === "merchant") return customerUid ?? null;
  requireCustomer(ctx, customerUid ?? ctx.caller.customerUid);
  return ctx.caller.customerUid;
}
