/**
 * Which driver errors mean "the database did not answer in time or the
 * connection is gone" (retryable, DATABASE_UNAVAILABLE) rather than a bug.
 * The one classification: src/errors.ts (toAppError) maps through it, and
 * with it every GraphQL answer, REST answer and webhook verdict.
 */

/** PostgreSQL SQLSTATEs: the statement was cut short or the server is going away; retrying may succeed. */
const UNAVAILABLE_SQLSTATES = new Set([
  "57014", // query_canceled: statement_timeout (or a cancel request)
  "55P03", // lock_not_available: lock_timeout
  "57P01", // admin_shutdown: the backend was terminated
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: the server is starting or stopping
  "53300", // too_many_connections
]);

/** Socket errors of the driver's connection. */
const UNAVAILABLE_ERRNOS = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);

/**
 * Messages of errors that carry no code: the pool's acquire timeout (knex),
 * an acquire from a pool being destroyed, and `pg` losing its connection.
 */
const UNAVAILABLE_MESSAGE =
  /Timeout acquiring a connection|Unable to acquire a connection|Connection terminated|connection error and is not queryable|Client was closed and is not queryable|Query read timeout/;

function isUnavailable(e: { code?: unknown; name?: unknown; message?: unknown }): boolean {
  const code = typeof e.code === "string" ? e.code : undefined;
  if (code !== undefined) {
    // Class 08: connection exceptions.
    if (UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_ERRNOS.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  if (e.name === "KnexTimeoutError") return true;
  return typeof e.message === "string" && UNAVAILABLE_MESSAGE.test(e.message);
}

/**
 * True when `err` says the database timed out, cancelled the statement, or
 * lost the connection. MikroORM's wrappers keep the driver's `code` and
 * message, so the ORM's errors and those of the repositories' plain SQL
 * (src/db/tx.ts) read the same. Causes are
 * not followed: an Iamport transport error wraps socket errors of its own.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  return typeof err === "object" && err !== null && isUnavailable(err as Record<string, unknown>);
}
