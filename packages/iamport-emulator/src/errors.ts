/**
 * An Iamport-style failure. Routes turn it into the envelope
 * `{code, message, response: null}` with `httpStatus`.
 *
 * Iamport answers business refusals (declined billing key, duplicate order,
 * nothing to revoke) with HTTP 200 and a non-zero code, lookups of unknown
 * things with 404, bad parameters with 400 and auth problems with 401.
 */
export class IamportError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "IamportError";
  }
}

/** A request Iamport would reject before doing anything (missing or malformed parameter). */
export const badRequest = (message: string): IamportError => new IamportError(400, -1, message);

/** A request understood but refused (HTTP 200, non-zero code), e.g. a duplicate merchant_uid. */
export const refused = (message: string, code = 1): IamportError => new IamportError(200, code, message);

/** A lookup of something that does not exist. */
export const notFound = (message: string): IamportError => new IamportError(404, 1, message);

export const unauthorized = (message = "Unauthorized"): IamportError => new IamportError(401, -1, message);
