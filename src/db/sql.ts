// removed once renewal.ts is gone: the batched renewal's own transaction on a pooled connection.
// Repositories run their SQL through src/db/tx.ts.
import type { EntityManager } from "@mikro-orm/postgresql";
import { escapeLiteral, types } from "pg";
import { prepareValue } from "pg/lib/utils";

/** The part of a `pg` client this module uses. */
interface PgClient {
  query(config: { text: string; values: unknown[]; types?: unknown }): Promise<PgResult | PgResult[]>;
}

interface PgResult {
  rows: Record<string, unknown>[];
  rowCount: number | null;
  command?: string;
}

/** pg's own parsers: timestamps arrive as Dates, parsed by the driver (see DRIVER_TYPES in tx.ts). */
const DRIVER_TYPES = { getTypeParser: types.getTypeParser };

/** Runs an unnamed statement: nothing is prepared under a name that `DISCARD ALL` or a pooler could lose. */
async function run(conn: PgClient, text: string, values: unknown[]): Promise<Record<string, unknown>[]> {
  const res = (await conn.query({ text, values, types: DRIVER_TYPES })) as PgResult;
  return res.rows;
}

/**
 * A parameter as an SQL literal: the text pg sends for it as a parameter
 * (prepareValue), quoted by pg's escapeLiteral. Undefined for a binary value.
 */
function literal(value: unknown): string | undefined {
  const v = prepareValue(value);
  if (v === null) return "null";
  return typeof v === "string" ? escapeLiteral(v) : undefined;
}

/**
 * A statement as SQL text without parameters, to be sent with others in one
 * simple query: the text with each `$n` replaced by its literal. Each literal
 * is read by PostgreSQL with the parameter's type, as the parameter would be.
 * `text` must contain `$` only in its parameters. Undefined (the statement
 * goes in a round trip of its own) for a binary value.
 */
function inline(text: string, values: unknown[]): string | undefined {
  if (values.length === 0) return text;
  const lits = values.map(literal);
  if (lits.includes(undefined)) return undefined;
  return text.replace(/\$(\d+)/g, (_, n: string) => {
    const lit = lits[Number(n) - 1];
    if (lit === undefined) throw new Error(`statement has no value for $${n}`);
    return `(${lit})`;
  });
}

interface KnexClient {
  acquireConnection(): Promise<PgClient>;
  releaseConnection(conn: PgClient): Promise<unknown>;
}

/** A statement and its parameters ($1, $2, ...). */
export interface Statement {
  text: string;
  values?: unknown[];
}

/**
 * Statements on a connection held by `transaction`: one (its rows), or
 * several in one round trip (`all`: each one's rows, in order).
 */
export interface Query {
  <T = Record<string, unknown>>(text: string, values?: unknown[]): Promise<T[]>;
  all(statements: Statement[]): Promise<Record<string, unknown>[][]>;
}

/** The settings of a `keyedPlans` transaction (see `transaction`), sent with its BEGIN. */
const KEYED_PLANS =
  "set local plan_cache_mode = force_generic_plan; set local enable_seqscan = off; set local enable_hashjoin = off; set local enable_mergejoin = off";

/**
 * Runs `fn` in a transaction on one connection of the ORM's pool (plain SQL,
 * no unit of work). Commits what `fn` returns; rolls back when it throws or
 * returns `null` (the caller's "not for me, nothing written").
 *
 * The BEGIN is sent with the first statement: in its own round trip before
 * a single one (`q`), in the same simple query with a batch (`q.all`). `q.all`
 * sends several statements as one simple query, with their parameters as
 * literals (`inline`). Each statement of a simple query reads a snapshot of its own
 * (READ COMMITTED), taken when it starts: a statement after one that waited
 * for row locks sees what was committed meanwhile, as it would in a round
 * trip of its own. A batch that fails with the BEGIN is rolled back at once:
 * nothing of the transaction is left.
 *
 * `keyedPlans`: for statements that find a few rows by primary or unique
 * keys (`= any($1)`, joins to `unnest($1, ...)` on keys). The plans are
 * nested loops over index scans (sequential scans, hash and merge joins off),
 * which is right at every table size: a generic plan made while a table was
 * small must not keep a sequential scan once it is large. All `set local`,
 * sent with the BEGIN: no round trip of their own, gone at the commit.
 */
export async function transaction<R>(em: EntityManager, fn: (q: Query) => Promise<R | null>, opts: { keyedPlans?: boolean } = {}): Promise<R | null> {
  const client = (em.getKnex() as unknown as { client: KnexClient }).client;
  const conn = await client.acquireConnection();
  // A connection whose transaction state is unknown (BEGIN, COMMIT or ROLLBACK failed) must not go back
  // to the pool, where the next user would find it inside a transaction holding row locks.
  const control = async (text: string): Promise<PgResult | PgResult[]> => {
    try {
      return await conn.query({ text, values: [] });
    } catch (err) {
      (conn as PgClient & { __knex__disposed?: unknown }).__knex__disposed = err;
      throw err;
    }
  };
  /** Sent with the first statement(s); undefined once sent. */
  let begin: string | undefined = opts.keyedPlans ? `begin; ${KEYED_PLANS}` : "begin";
  const opened = begin;
  const q = (async <T>(text: string, values: unknown[] = []) => {
    if (begin !== undefined) {
      const b = begin;
      begin = undefined;
      await control(b);
    }
    return (await run(conn, text, values)) as T[];
  }) as Query;
  q.all = async (statements) => {
    const texts = statements.map((st) => inline(st.text, st.values ?? []));
    if (texts.includes(undefined)) {
      const rows: Record<string, unknown>[][] = [];
      for (const st of statements) rows.push(await q(st.text, st.values));
      return rows;
    }
    const head = begin === undefined ? "" : `${begin}; `;
    begin = undefined;
    let res: PgResult | PgResult[];
    try {
      res = await conn.query({ text: head + texts.join("; "), values: [], types: DRIVER_TYPES });
    } catch (err) {
      if (!head) throw err;
      // Sent with the BEGIN: nothing else happened in the transaction. Rolled back, so that nothing runs
      // outside it; begun again with the next statement.
      try {
        await control("rollback");
      } catch {
        throw err; // the connection is discarded (control): the batch's own error is the one to report
      }
      begin = opened;
      throw err;
    }
    const results = Array.isArray(res) ? res : [res];
    return results.slice(results.length - statements.length).map((r) => r.rows);
  };
  try {
    let result: R | null;
    try {
      result = await fn(q);
    } catch (err) {
      if (begin !== opened) await control("rollback").catch(() => undefined);
      throw err;
    }
    // Nothing was sent: nothing to end.
    if (begin === opened) return result;
    if (result === null) {
      await control("rollback");
      return null;
    }
    // COMMIT of a transaction that an error aborted answers ROLLBACK, not an error.
    if (((await control("commit")) as PgResult).command !== "COMMIT") throw new Error("the transaction was rolled back by the database");
    return result;
  } finally {
    await client.releaseConnection(conn);
  }
}

/** A timestamp of a row read by `transaction`: already a Date, parsed by the driver. */
export function pgTime(v: string | Date | null): Date | null {
  if (typeof v === "string") throw new Error("timestamps of rows read by transaction() are parsed by the driver");
  return v;
}
