import { isDatabaseUnavailable } from "./db/errors";

/**
 * One error hierarchy for the whole server. Each error has a stable `code`,
 * mapped once to GraphQL `extensions.code` (src/graphql/errors.ts) and once to
 * an HTTP status for REST (httpStatusOf below). Messages are written for the
 * caller and never contain card data.
 */
export type ErrorCode =
  | "BAD_USER_INPUT"
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "CARD_REJECTED"
  | "CONFLICT"
  | "UPSTREAM_UNAVAILABLE"
  | "OUTCOME_UNKNOWN"
  | "DATABASE_UNAVAILABLE"
  | "INTERNAL_SERVER_ERROR";

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Invalid input; `field` names the offending input field. */
export class BadUserInputError extends AppError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super("BAD_USER_INPUT", `${field} ${message}`, { field });
  }
}

export class UnauthenticatedError extends AppError {
  constructor(message = "A valid API key is required: send Authorization: Bearer <key>") {
    super("UNAUTHENTICATED", message);
  }
}

export class ForbiddenError extends AppError {
  constructor(message = "This caller may not perform this operation") {
    super("FORBIDDEN", message);
  }
}

export class NotFoundError extends AppError {
  constructor(what: string) {
    super("NOT_FOUND", `${what} was not found`);
  }
}

/** Iamport refused to issue a billing key for the card. */
export class CardRejectedError extends AppError {
  constructor(message: string, iamportCode?: number) {
    super("CARD_REJECTED", message, iamportCode === undefined ? {} : { iamportCode });
  }
}

export class ConflictError extends AppError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("CONFLICT", message, details);
  }
}

/** Iamport is unreachable, timing out, or answering 5xx: the outcome may be unknown. */
export class UpstreamUnavailableError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("UPSTREAM_UNAVAILABLE", message, {}, options);
  }
}

/**
 * Iamport may have been asked to move money, but this server could not learn or
 * record the answer (Iamport timed out, or the database failed afterwards). The
 * payment row is settled later by reconciliation under the same merchantUid;
 * the caller retries with that merchantUid, never with a new one, and is never
 * charged twice for it.
 */
export class OutcomeUnknownError extends AppError {
  /**
   * `advice` replaces the default "retry with the same merchantUid" where a
   * retry would not reach the same payment (a new subscription would charge
   * again); `details` adds extensions (and may set `retryable: false` then).
   */
  constructor(merchantUid: string, options?: { cause?: unknown; advice?: string; details?: Record<string, unknown> }) {
    super(
      "OUTCOME_UNKNOWN",
      `The outcome of payment ${merchantUid} is not known yet; it is settled by reconciliation. ${
        options?.advice ?? "Retry with the same merchantUid (never a new one) or query the payment later"
      }`,
      { merchantUid, retryable: true, ...options?.details },
      options,
    );
  }
}

/**
 * The database did not answer in time (statement, lock or pool timeout) or the
 * connection was lost before anything was sent to Iamport: nothing happened,
 * and the same request may be retried.
 */
export class DatabaseUnavailableError extends AppError {
  constructor(message = "The database is not answering; nothing was done. Retry later", options?: { cause?: unknown }) {
    super("DATABASE_UNAVAILABLE", message, { retryable: true }, options);
  }
}

/**
 * What toAppError says for a driver error of src/db/errors.ts: a statement
 * that failed was rolled back with its transaction, and what a service did
 * at Iamport before is safe to repeat with the same request (a billing key
 * per customer, a refund guarded by Iamport's checksum; a failure after a
 * charge was sent is OUTCOME_UNKNOWN, raised by the payment service).
 */
const DATABASE_UNAVAILABLE_MESSAGE = "The database did not answer in time; the request was not completed. Retry later";

const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_USER_INPUT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CARD_REJECTED: 402,
  CONFLICT: 409,
  UPSTREAM_UNAVAILABLE: 503,
  OUTCOME_UNKNOWN: 503,
  DATABASE_UNAVAILABLE: 503,
  INTERNAL_SERVER_ERROR: 500,
};

export function httpStatusOf(code: ErrorCode): number {
  return HTTP_STATUS[code];
}

/**
 * Whatever was thrown, as an AppError: a database that timed out or went away
 * is DATABASE_UNAVAILABLE (retryable); other unknown errors become
 * INTERNAL_SERVER_ERROR with no details.
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (isDatabaseUnavailable(err)) return new DatabaseUnavailableError(DATABASE_UNAVAILABLE_MESSAGE, { cause: err });
  return new AppError("INTERNAL_SERVER_ERROR", "Internal server error", {}, { cause: err });
}
