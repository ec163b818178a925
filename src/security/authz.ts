import { ForbiddenError } from "../errors";
import type { Caller } from "../graphql/context";

/**
 * The one rule for acting on a customer's behalf, shared by the GraphQL
 * resolvers (src/graphql/authz.ts) and the REST card routes
 * (src/http/routes.ts): a merchant key acts for every customer, a customer
 * token only for the customerUid it was minted for.
 */
export function requireActingFor(caller: Caller, customerUid: string | null | undefined): void {
  if (caller.kind === "merchant") return;
  if (!customerUid || customerUid !== caller.customerUid) {
    throw new ForbiddenError("A customer token may only act on its own customer's data");
  }
}
