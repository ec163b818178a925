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

/**
 * Runs one statement with `?` placeholders, its values sent as parameters
 * (never pasted into the text), on the caller's transaction or the pool
 * (`activeKnex`), and returns its rows. Unnamed: PostgreSQL plans it per
 * call, which also holds on a connection whose prepared statements were
 * discarded (`DISCARD ALL`) or behind a pooler in transaction mode.
 */
export async function query<T>(scope: Scope, text: string, values: readonly unknown[]): Promise<T[]> {
  const res = (await activeKnex(scope)
    .raw(text, values as Knex.RawBinding[])
    .options({ types: DRIVER_TYPES })) as { rows: T[] };
  return res.rows;
}
