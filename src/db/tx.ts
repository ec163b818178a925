import type { Knex } from "@mikro-orm/knex";
import type { EntityManager } from "@mikro-orm/postgresql";
import { types } from "pg";

/**
 * What a repository is called with: the caller's EntityManager, as a
 * service's Ctx carries it. `db` is the ORM's root manager, which a request
 * carries so that a read need not fork one.
 */
export interface Scope {
  em: EntityManager;
  db?: EntityManager;
}

/**
 * The knex that a repository's SQL runs on: the caller's transaction when it
 * has one, the ORM's pool otherwise. A transaction's own manager holds its
 * transaction; the root manager finds the one that MikroORM's `transactional`
 * runs the current call in (its transaction context follows async calls), so
 * a statement never runs beside the caller's transaction by mistake.
 */
export function activeKnex(scope: Scope): Knex {
  const em = scope.db ?? scope.em;
  return em.getTransactionContext<Knex.Transaction>() ?? em.getKnex();
}

/**
 * Runs `fn` in one transaction of `em`: the unit of work it is given is
 * flushed and committed when `fn` returns, rolled back when it throws.
 * Repositories called inside, with that manager or with any scope of the
 * same call, run their SQL in the same transaction (`activeKnex`).
 */
export function inTransaction<T>(em: EntityManager, fn: (tx: EntityManager) => Promise<T>): Promise<T> {
  return em.transactional(fn);
}

/**
 * pg's own parsers for every type. The ORM's connections return timestamps
 * as text (MikroORM turns pg's date parsing off for its hydration); SQL run
 * by repositories asks pg for its defaults per statement, so a timestamptz
 * arrives as a Date, parsed by the driver.
 */
const DRIVER_TYPES = { getTypeParser: types.getTypeParser };

/** The part of knex's client that runs a statement: the pool's, or a transaction's (which always hands out its own connection). */
interface StatementClient {
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<unknown>;
  query(connection: unknown, statement: { sql: string; bindings: readonly unknown[]; options: object; method: "raw" }): Promise<{ response: { rows: unknown[] } }>;
}

/**
 * Runs one statement with `?` placeholders, its values sent as parameters
 * (never pasted into the text), on the caller's transaction or the pool
 * (`activeKnex`), and returns its rows. Unnamed: PostgreSQL plans it per
 * call, which also holds on a connection whose prepared statements were
 * discarded (`DISCARD ALL`) or behind a pooler in transaction mode.
 *
 * The statement goes straight to knex's client (the connection, `?` to `$n`,
 * the `query` event every statement emits, errors as knex words them): the
 * text is already SQL, so `knex.raw`'s builder, its compilation and its
 * runner are work for nothing on every read.
 */
export async function query<T>(scope: Scope, text: string, values: readonly unknown[]): Promise<T[]> {
  // As knex.raw refuses it: an undefined value is a caller's bug, never a NULL.
  if (values.includes(undefined)) throw new Error(`Undefined binding(s) detected when compiling RAW query: ${text}`);
  const client = activeKnex(scope).client as unknown as StatementClient;
  const connection = await client.acquireConnection();
  try {
    const done = await client.query(connection, { sql: text, bindings: values, options: { types: DRIVER_TYPES }, method: "raw" });
    return done.response.rows as T[];
  } finally {
    await client.releaseConnection(connection);
  }
}
