import { DriverException, LockWaitTimeoutException, UniqueConstraintViolationException } from "@mikro-orm/core";
import { ConfigError, loadConfig } from "../../src/config";
import { isDatabaseUnavailable } from "../../src/db/errors";
import { toAppError } from "../../src/errors";
import { IamportUnavailableError } from "../../src/iamport/iamport.errors";

/** An error as `pg` raises it: a message and the SQLSTATE or socket code. */
function pgError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

describe("isDatabaseUnavailable: the one classification of driver errors", () => {
  it.each([
    ["statement timeout", pgError("canceling statement due to statement timeout", "57014")],
    ["lock timeout", pgError("canceling statement due to lock timeout", "55P03")],
    ["backend terminated", pgError("terminating connection due to administrator command", "57P01")],
    ["server starting up", pgError("the database system is starting up", "57P03")],
    ["too many connections", pgError("sorry, too many clients already", "53300")],
    ["connection failure", pgError("connection failure", "08006")],
    ["connection reset", pgError("read ECONNRESET", "ECONNRESET")],
    ["connection refused", pgError("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED")],
    ["connection lost", pgError("Connection terminated unexpectedly")],
    ["pool acquire timeout", Object.assign(new Error("Knex: Timeout acquiring a connection. The pool is probably full."), { name: "KnexTimeoutError" })],
    ["the same, wrapped by MikroORM", new DriverException(new Error("Knex: Timeout acquiring a connection. The pool is probably full."))],
    ["a lock timeout wrapped by MikroORM", new LockWaitTimeoutException(pgError("select 1 - canceling statement due to lock timeout", "55P03"))],
  ])("%s → DATABASE_UNAVAILABLE (503, retryable)", (_what, err) => {
    expect(isDatabaseUnavailable(err)).toBe(true);
    const e = toAppError(err);
    expect(e.code).toBe("DATABASE_UNAVAILABLE");
    expect(e.details).toEqual({ retryable: true });
    // Never the driver's text (it may carry the SQL and its values).
    expect(e.message).not.toContain(err.message);
  });

  it.each([
    ["a unique violation", new UniqueConstraintViolationException(pgError("duplicate key value violates unique constraint", "23505"))],
    ["a syntax error", pgError('syntax error at or near "selec"', "42601")],
    ["a programming error", new TypeError("Cannot read properties of undefined")],
    // Iamport's transport errors carry socket errors of their own: UPSTREAM_UNAVAILABLE is decided elsewhere.
    ["an Iamport transport error", new IamportUnavailableError("Iamport is unreachable", "POST /subscribe/payments/again", { cause: pgError("read ECONNRESET", "ECONNRESET") })],
  ])("%s stays INTERNAL_SERVER_ERROR", (_what, err) => {
    expect(isDatabaseUnavailable(err)).toBe(false);
    expect(toAppError(err).code).toBe("INTERNAL_SERVER_ERROR");
  });
});

describe("database timeouts and the shutdown drain in the configuration", () => {
  it("default to 5 s per statement, lock and pool acquire on PostgreSQL (30 s to acquire the embedded database's one connection), and 10 s of drain", () => {
    const c = loadConfig({ DATABASE_URL: "postgres://db.internal/billing" });
    expect(c.databaseTimeouts).toEqual({ statementMs: 5000, lockMs: 5000, acquireMs: 5000 });
    expect(c.shutdownDrainMs).toBe(10_000);
    expect(loadConfig({}).databaseTimeouts).toEqual({ statementMs: 5000, lockMs: 5000, acquireMs: 30_000 });
  });

  it("are read from the environment; 0 turns a statement or lock timeout off", () => {
    const c = loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: "0", DATABASE_LOCK_TIMEOUT_MS: "1500", DATABASE_ACQUIRE_TIMEOUT_MS: "2500", SHUTDOWN_DRAIN_MS: "30000" });
    expect(c.databaseTimeouts).toEqual({ statementMs: 0, lockMs: 1500, acquireMs: 2500 });
    expect(c.shutdownDrainMs).toBe(30_000);
  });

  it.each(["DATABASE_STATEMENT_TIMEOUT_MS", "DATABASE_LOCK_TIMEOUT_MS", "DATABASE_ACQUIRE_TIMEOUT_MS", "SHUTDOWN_DRAIN_MS"])("%s refuses a value that is not a whole number of milliseconds", (variable) => {
    expect(() => loadConfig({ [variable]: "5s" })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: "-1" })).toThrow(new RegExp(variable));
  });

  it("refuses an acquire timeout of 0 (a request would wait for a connection forever)", () => {
    expect(() => loadConfig({ DATABASE_ACQUIRE_TIMEOUT_MS: "0" })).toThrow(/DATABASE_ACQUIRE_TIMEOUT_MS/);
  });
});
