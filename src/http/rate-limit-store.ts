import type { MikroORM } from "@mikro-orm/postgresql";
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from "@fastify/rate-limit";

type Hits = { current: number; ttl: number };

/**
 * @fastify/rate-limit store in the server's PostgreSQL (RATE_LIMIT_STORE=postgres),
 * so that several processes behind a load balancer share one budget per key.
 * One statement per hit: an upsert that restarts the window once it is over.
 * The limiters' keys carry their own prefix (security.ts), so one table serves all.
 */
export class PostgresRateLimitStore implements FastifyRateLimitStore {
  constructor(private readonly orm: MikroORM) {}

  /** @fastify/rate-limit builds the store from a class: this one, bound to the server's ORM. */
  static bound(orm: MikroORM): FastifyRateLimitStoreCtor {
    return class extends PostgresRateLimitStore {
      constructor() {
        super(orm);
      }
    };
  }

  incr(key: string, callback: (error: Error | null, result?: Hits) => void, timeWindow: number): void {
    this.orm.em
      .getConnection()
      .execute<{ hits: number; ttl_ms: number }[]>(
        `insert into rate_limits (key, hits, reset_at) values (?, 1, now() + ? * interval '1 millisecond')
         on conflict (key) do update set
           hits = case when rate_limits.reset_at <= now() then 1 else rate_limits.hits + 1 end,
           reset_at = case when rate_limits.reset_at <= now() then excluded.reset_at else rate_limits.reset_at end
         returning hits, greatest(0, extract(epoch from (reset_at - now())) * 1000)::int as ttl_ms`,
        [`rl:${key}`, timeWindow],
      )
      .then(
        (rows) => callback(null, { current: Number(rows[0].hits), ttl: Number(rows[0].ttl_ms) }),
        (err: Error) => callback(err),
      );
  }

  /** Every limiter shares the table (their keys differ by prefix). */
  child(): FastifyRateLimitStore {
    return this;
  }
}
