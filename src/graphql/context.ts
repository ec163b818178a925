import type { Ctx } from "../billing/context";
import type { Services } from "../billing/services";
import type { EventsService } from "../events/events.service";
import type { CustomerTokenService } from "../security/customer-token.service";

/** Who is calling: a merchant key (everything) or a customer token (that customer's own data only). */
export type Caller = { kind: "merchant"; keyId: string } | { kind: "customer"; customerUid: string };

export interface GraphQLContext extends Ctx {
  services: Services;
  events: EventsService;
  customerTokens: CustomerTokenService;
  caller: Caller;
  /** Set once the operation is resolved, for the request log line and metrics. */
  operationName?: string;
  /** process.hrtime.bigint() when the GraphQL request started. */
  startedAt: bigint;
}
