import type { Ctx } from "../billing/context";
import type { Services } from "../billing/services";

/** Who is calling: a merchant key (everything). Customer tokens arrive with the security work. */
export type Caller = { kind: "merchant"; keyId: string };

export interface GraphQLContext extends Ctx {
  services: Services;
  caller: Caller;
  /** Set once the operation is resolved, for the request log line and metrics. */
  operationName?: string;
}
