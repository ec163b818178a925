import crypto from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { escapeLiteral } from "pg";
import { prepareValue } from "pg/lib/utils";

/** The part of a `pg` client this module uses. */
interface PgClient {
  query(config: { name?: string; text: string; values: unknown[] }): Promise<PgResult | PgResult[]>;
}

interface PgResult {
  rows: Record<string, unknown>[];
  rowCount: number | null;
  command?: string;
}

/**
 * Prepared statements, named per connection: PostgreSQL parses and plans a
 * statement once per connection instead of on every call (on this 2-core
 * machine PostgreSQL's CPU is shared with the server: bench/README.md). Names
 * carry the process and the connection, because the embedded database is one
 * session for every connection, where statements outlive the connection that
 * prepared them.
 */
const PREFIX = `q${process.pid.toString(36)}${crypto.randomBytes(3).toString("hex")}`;
const MAX_NAMED_PER_CONNECTION = 200;
let connections = 0;
/** Per connection: the names given to statement texts, and those the connection has prepared (run once). */
const prepared = new WeakMap<PgClient, { id: number; names: Map<string, string>; ready: Set<string> }>();
let preparing = true;
/** False once PostgreSQL did not know a prepared statement by this side's name (a pooler renames them): see `inline`. */
let executing = true;
let onExecuteUnavailable: ((err: Error) => void) | undefined;

/**
 * Turns named statements off (DATABASE_PREPARED_STATEMENTS=false behind a
 * transaction-mode pooler, and always on the embedded database, whose one
 * session would keep the statements of every connection ever opened).
 * `onExecuteUnavailable` is told once when `execute` of a prepared statement
 * fails because PostgreSQL does not know it by this side's name (see `inline`).
 */
export function usePreparedStatements(enabled: boolean, onExecuteUnavailableFn?: (err: Error) => void): void {
  preparing = enabled;
  executing = true;
  onExecuteUnavailable = onExecuteUnavailableFn;
}

function statement(conn: PgClient, text: string, values: unknown[]): { name?: string; text: string; values: unknown[] } {
  if (!preparing) return { text, values };
  let c = prepared.get(conn);
  if (!c) {
    c = { id: ++connections, names: new Map(), ready: new Set() };
    prepared.set(conn, c);
  }
  let name = c.names.get(text);
  if (name === undefined && c.names.size < MAX_NAMED_PER_CONNECTION) {
    name = `${PREFIX}_${c.id.toString(36)}_${c.names.size.toString(36)}`;
    c.names.set(text, name);
  }
  return name === undefined ? { text, values } : { name, text, values };
}

/** Runs a statement; a named one is then known to be prepared on the connection (see `inline`). */
async function run(conn: PgClient, text: string, values: unknown[]): Promise<Record<string, unknown>[]> {
  const config = statement(conn, text, values);
  const res = (await conn.query(config)) as PgResult;
  if (config.name !== undefined) prepared.get(conn)!.ready.add(config.name);
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
 * simple query: `execute <name>(<literals>)` of the statement as this
 * connection prepared it (the same plan as a parameterized call: generic
 * under `keyedPlans`), or, without prepared statements, the text with each
 * `$n` replaced by its literal (planned per call, as an unnamed statement is
 * anyway). Each literal is read by PostgreSQL with the parameter's type, as
 * the parameter would be. `text` must contain `$` only in its parameters
 * (the statements of this project are constants).
 *
 * Undefined (the statement goes in a round trip of its own) while the
 * connection has not prepared it yet, and for a binary value. Once
 * PostgreSQL did not know a statement by this side's name, never `execute`
 * again, literals in the text instead: a pooler in transaction mode
 * (PgBouncer 1.21+) prepares statements on its server connections under
 * names of its own, and passes `execute` through untouched.
 */
function inline(conn: PgClient, text: string, values: unknown[]): string | undefined {
  if (values.length === 0) return text;
  const lits = values.map(literal);
  if (lits.includes(undefined)) return undefined;
  const config = statement(conn, text, values);
  if (config.name === undefined || !executing) {
    return text.replace(/\$(\d+)/g, (_, n: string) => {
      const lit = lits[Number(n) - 1];
      if (lit === undefined) throw new Error(`statement has no value for $${n}`);
      return `(${lit})`;
    });
  }
  if (!prepared.get(conn)!.ready.has(config.name)) return undefined;
  return `execute ${config.name}(${lits.join(", ")})`;
}

interface KnexClient {
  acquireConnection(): Promise<PgClient>;
  releaseConnection(conn: PgClient): Promise<unknown>;
}

/**
 * Runs one parameterized statement ($1, $2, ...) on a connection of the ORM's
 * own pool and returns plain rows: no entity hydration, no identity map, no
 * change-set snapshot. For the hot paths (GraphQL reads, the webhook inbox),
 * where the unit of work cost 5-10x the query itself (bench/README.md).
 */
export async function sql<T = Record<string, unknown>>(em: EntityManager, text: string, values: unknown[] = []): Promise<T[]> {
  // Its own pooled connection, autocommit: inside a transaction of `em` it would silently run outside it.
  if (em.getTransactionContext()) throw new Error("sql() runs outside transactions; use transaction() for statements that must share one");
  const client = (em.getKnex() as unknown as { client: KnexClient }).client;
  const conn = await client.acquireConnection();
  try {
    return (await run(conn, text, values)) as T[];
  } finally {
    await client.releaseConnection(conn);
  }
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

/**
 * The settings of a `keyedPlans` transaction (see `transaction`), sent with
 * its BEGIN; exported for the test that reads the plans they give.
 */
export const KEYED_PLANS =
  "set local plan_cache_mode = force_generic_plan; set local enable_seqscan = off; set local enable_hashjoin = off; set local enable_mergejoin = off";

/**
 * Runs `fn` in a transaction on one connection of the ORM's pool (plain SQL,
 * no unit of work). Commits what `fn` returns; rolls back when it throws or
 * returns `null` (the caller's "not for me, nothing written").
 *
 * The BEGIN is sent with the first statement: in its own round trip before
 * a single one (`q`), in the same simple query with a batch (`q.all`). `q.all`
 * sends several statements as one simple query, each as `execute` of the
 * statement this connection prepared, with its parameters as literals
 * (`inline`). On a connection that has not prepared them yet they go one by
 * one, which prepares them, and the next transaction on it sends them
 * together. Each statement of a simple query reads a snapshot of its own
 * (READ COMMITTED), taken when it starts: a statement after one that waited
 * for row locks sees what was committed meanwhile, as it would in a round
 * trip of its own. A batch that fails with the BEGIN is rolled back at once:
 * nothing of the transaction is left.
 *
 * `keyedPlans`: for statements that find a few rows by primary or unique
 * keys (`= any($1)`, joins to `unnest($1, ...)` on keys). They run on generic
 * plans (`plan_cache_mode = force_generic_plan`): their custom plans look
 * cheaper to PostgreSQL by its row estimates, so it planned them again on
 * every execution, a quarter of its CPU in a renewal burst. And the plans are
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
    const texts = statements.map((st) => inline(conn, st.text, st.values ?? []));
    if (texts.includes(undefined)) {
      const rows: Record<string, unknown>[][] = [];
      for (const st of statements) rows.push(await q(st.text, st.values));
      return rows;
    }
    const head = begin === undefined ? "" : `${begin}; `;
    begin = undefined;
    let res: PgResult | PgResult[];
    try {
      res = await conn.query({ text: head + texts.join("; "), values: [] });
    } catch (err) {
      // PostgreSQL does not know a statement by the name it was prepared under (invalid_sql_statement_name):
      // a pooler in between (see `inline`). From now on, literals in the text instead of `execute`.
      const unknownName = (err as { code?: unknown }).code === "26000" && texts.some((t) => t!.startsWith("execute "));
      if (unknownName && executing) {
        executing = false;
        onExecuteUnavailable?.(err as Error);
      }
      if (!head) throw err;
      // Sent with the BEGIN: nothing else happened in the transaction. Rolled back, so that nothing runs
      // outside it; begun again with the next statement (this batch once more, when its names were unknown).
      try {
        await control("rollback");
      } catch {
        throw err; // the connection is discarded (control): the batch's own error is the one to report
      }
      begin = opened;
      if (unknownName) return q.all(statements);
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

/**
 * A timestamptz as the ORM's connections return it ("2026-11-21 15:46:12.577+00":
 * MikroORM turns pg's date parsing off) or as a Date.
 */
export function pgTime(v: string | Date | null): Date | null {
  if (v === null || v instanceof Date) return v;
  // The common form, in UTC ("YYYY-MM-DD HH:MM:SS[.ffffff]+00"), read digit by digit: a regex and
  // Date's string parser cost more than the rest of a row's mapping, and slices cost a string each.
  const end = v.length - 3;
  if (end >= 19 && v.charCodeAt(end) === 43 && v.charCodeAt(end + 1) === 48 && v.charCodeAt(end + 2) === 48 && separated(v)) {
    let ms = 0;
    let fractionOk = end === 19;
    if (v.charCodeAt(19) === 46 && end > 20) {
      // Milliseconds: the first three digits of the fraction, truncated, as before.
      fractionOk = true;
      for (let i = 20, scale = 100; i < end; i++, scale /= 10) {
        const c = v.charCodeAt(i) - 48;
        if (c < 0 || c > 9) fractionOk = false;
        else if (scale >= 1) ms += c * scale;
      }
    }
    const t = fractionOk
      ? Date.UTC(digits(v, 0, 4), digits(v, 5, 7) - 1, digits(v, 8, 10), digits(v, 11, 13), digits(v, 14, 16), digits(v, 17, 19), ms)
      : NaN;
    if (!Number.isNaN(t)) return new Date(t);
  }
  const iso = v.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new Error(`unreadable timestamp from the database: ${v}`);
  return d;
}

/** "YYYY-MM-DD HH:MM:SS": the separators where the fast path expects them. */
function separated(v: string): boolean {
  return v.charCodeAt(4) === 45 && v.charCodeAt(7) === 45 && v.charCodeAt(10) === 32 && v.charCodeAt(13) === 58 && v.charCodeAt(16) === 58;
}

/** The decimal number in v[from, to), or NaN if a character there is not a digit. */
function digits(v: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = v.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return NaN;
    n = n * 10 + c;
  }
  return n;
}

/**
 * The text of a statement whose shape depends on the call (which filters it
 * has), built once per shape and then the same string every time: a text
 * built per call is hashed again for its prepared-statement lookup, ~0.01 ms
 * for a read's 400 characters (bench/README.md). `shape` must come from a
 * small fixed set (the filters' SQL, never values).
 */
export function shaped(cache: Map<string, string>, shape: string, build: (shape: string) => string): string {
  let text = cache.get(shape);
  if (text === undefined) {
    text = build(shape);
    cache.set(shape, text);
  }
  return text;
}
