import crypto from "node:crypto";
import type { MikroORM } from "@mikro-orm/postgresql";
import { query, type Scope } from "../tx";

/** A final answer kept for replays: the HTTP status and the body as sent. */
export interface StoredAnswer {
  status: number;
  body: string;
}

/** What claiming a key found. */
export type ClaimResult =
  /** This request runs; `owner` identifies its claim for complete/release. */
  | { kind: "claimed"; owner: string }
  /** The request already ran to a final answer. */
  | { kind: "done"; answer: StoredAnswer }
  /** The key was used for a different request. */
  | { kind: "mismatch" }
  /** The same request is running elsewhere (another replica, or a concurrent duplicate). */
  | { kind: "in_progress" };

export interface ClaimOptions {
  /** How long a key and its answer are kept. */
  ttlSeconds: number;
  /** After this long a claim still in progress is abandoned (its process died) and may be taken over. */
  leaseMs: number;
}

/**
 * Idempotency keys of /graphql mutations, in PostgreSQL so that every
 * replica sees them. A key is claimed by inserting its row 'in_progress'
 * before the mutation runs: the primary key (scope, key) decides which of
 * two concurrent duplicates runs. Every statement is a single autocommit
 * statement: nothing holds a connection or a lock while the mutation runs.
 */
export class IdempotencyStore {
  /** The ORM's root manager: outside any transaction, each statement commits on its own. */
  private readonly db: Scope;

  constructor(orm: MikroORM) {
    this.db = { em: orm.em };
  }

  private execute<T>(sql: string, params: unknown[]): Promise<T[]> {
    return query<T>(this.db, sql, params);
  }

  /**
   * Claims (scope, key) for a request with this fingerprint. An expired row is
   * replaced; a claim of the same request older than the lease is taken over.
   * Otherwise reports what the row holds.
   */
  async claim(scope: string, key: string, requestHash: string, opts: ClaimOptions): Promise<ClaimResult> {
    const owner = crypto.randomUUID();
    const claimed = await this.execute<{ owner: string }>(
      `insert into idempotency_keys (scope, key, request_hash, state, owner, created_at, claimed_at, expires_at)
       values (?, ?, ?, 'in_progress', ?, now(), now(), now() + make_interval(secs => ?))
       on conflict (scope, key) do update set
         request_hash = excluded.request_hash, state = 'in_progress', owner = excluded.owner, status = null, body = null,
         created_at = now(), claimed_at = now(), expires_at = excluded.expires_at
       where idempotency_keys.expires_at <= now()
          or (idempotency_keys.state = 'in_progress' and idempotency_keys.request_hash = excluded.request_hash
              and idempotency_keys.claimed_at < now() - make_interval(secs => ?))
       returning owner`,
      [scope, key, requestHash, owner, opts.ttlSeconds, opts.leaseMs / 1000],
    );
    if (claimed[0]?.owner === owner) return { kind: "claimed", owner };
    const [row] = await this.execute<{ request_hash: string; state: string; status: number | null; body: string | null }>(
      `select request_hash, state, status, body from idempotency_keys where scope = ? and key = ? and expires_at > now()`,
      [scope, key],
    );
    // Released (or expired) between the two statements: the caller asks again.
    if (!row) return { kind: "in_progress" };
    if (row.request_hash !== requestHash) return { kind: "mismatch" };
    if (row.state === "done" && row.body !== null) return { kind: "done", answer: { status: Number(row.status ?? 200), body: row.body } };
    return { kind: "in_progress" };
  }

  /** Stores the final answer of a claim this request holds. False when the claim was taken over meanwhile. */
  async complete(scope: string, key: string, owner: string, answer: StoredAnswer): Promise<boolean> {
    const rows = await this.execute<{ key: string }>(
      `update idempotency_keys set state = 'done', owner = null, status = ?, body = ? where scope = ? and key = ? and owner = ? returning key`,
      [answer.status, answer.body, scope, key, owner],
    );
    return rows.length > 0;
  }

  /** Gives a claim up without an answer: the next request with the key runs again. */
  async release(scope: string, key: string, owner: string): Promise<void> {
    await this.execute(`delete from idempotency_keys where scope = ? and key = ? and owner = ?`, [scope, key, owner]);
  }
}

/** Deletes up to `limit` expired keys (reconciliation); returns how many. */
export async function purgeExpiredIdempotencyKeys(scope: Scope, limit: number): Promise<number> {
  const rows = await query<{ key: string }>(
    scope,
    `delete from idempotency_keys where (scope, key) in (select scope, key from idempotency_keys where expires_at <= now() limit ?) returning key`,
    [limit],
  );
  return rows.length;
}
