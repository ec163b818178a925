/**
 * Errors of the payment provider's clients (Iamport V1's, and PortOne V2's
 * adapter, which throws the same classes with the same meaning). They describe
 * the transport and the provider's answer; the billing services translate them
 * into the server's AppErrors. `provider` names who answered, for messages.
 */
export type ProviderLabel = "Iamport" | "PortOne";

export class IamportError extends Error {
  /**
   * True when the call itself never reached the provider (no token could be had,
   * the connection was refused): whatever it asked for cannot have happened.
   */
  readonly notSent: boolean;
  /** Who was asked: Iamport (V1) or PortOne (V2). */
  readonly provider: ProviderLabel;

  constructor(
    message: string,
    readonly endpoint: string,
    options?: { cause?: unknown; notSent?: boolean; provider?: ProviderLabel },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.notSent = options?.notSent ?? false;
    this.provider = options?.provider ?? "Iamport";
  }
}

/** The provider answered with a refusal (V1: a non-zero code; V2: a 4xx): the request was refused. */
export class IamportRefusedError extends IamportError {
  constructor(
    readonly code: number,
    readonly iamportMessage: string,
    readonly httpStatus: number,
    endpoint: string,
    provider: ProviderLabel = "Iamport",
  ) {
    super(`${provider} refused ${endpoint}: ${iamportMessage} (code ${code})`, endpoint, { provider });
  }
}

/** HTTP 404: the customer, payment or schedule is unknown to the provider. */
export class IamportNotFoundError extends IamportError {
  constructor(
    readonly iamportMessage: string,
    endpoint: string,
    provider: ProviderLabel = "Iamport",
  ) {
    super(`${provider} has no such resource for ${endpoint}: ${iamportMessage}`, endpoint, { provider });
  }
}

/** HTTP 401 that a new token does not cure (wrong credentials, or a token the provider still calls valid): the call was not executed. */
export class IamportUnauthorizedError extends IamportError {}

/** No answer in time: the call may or may not have taken effect. */
export class IamportTimeoutError extends IamportError {}

/** Connection refused/reset or a 5xx: a retry could help; the outcome of a write may be unknown. */
export class IamportUnavailableError extends IamportError {}
