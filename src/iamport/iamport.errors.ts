/**
 * Errors of the Iamport client. They describe the transport and Iamport's
 * answer; the billing services translate them into the server's AppErrors.
 */
export class IamportError extends Error {
  /**
   * True when the call itself never reached Iamport (no token could be had,
   * the connection was refused): whatever it asked for cannot have happened.
   */
  readonly notSent: boolean;

  constructor(
    message: string,
    readonly endpoint: string,
    options?: { cause?: unknown; notSent?: boolean },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.notSent = options?.notSent ?? false;
  }
}

/** Iamport answered with a non-zero code: the request was refused. */
export class IamportRefusedError extends IamportError {
  constructor(
    readonly code: number,
    readonly iamportMessage: string,
    readonly httpStatus: number,
    endpoint: string,
  ) {
    super(`Iamport refused ${endpoint}: ${iamportMessage} (code ${code})`, endpoint);
  }
}

/** HTTP 404: the customer, payment or schedule is unknown to Iamport. */
export class IamportNotFoundError extends IamportError {
  constructor(
    readonly iamportMessage: string,
    endpoint: string,
  ) {
    super(`Iamport has no such resource for ${endpoint}: ${iamportMessage}`, endpoint);
  }
}

/** HTTP 401 that a new token does not cure (wrong credentials, or a token Iamport still calls valid): the call was not executed. */
export class IamportUnauthorizedError extends IamportError {}

/** No answer in time: the call may or may not have taken effect. */
export class IamportTimeoutError extends IamportError {}

/** Connection refused/reset or a 5xx: a retry could help; the outcome of a write may be unknown. */
export class IamportUnavailableError extends IamportError {}
