import type { MikroORM } from "@mikro-orm/postgresql";
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from "@fastify/rate-limit";
import { hitRateLimit, type RateLimitHits } from "../db/repositories/rate-limits";

/**
 * @fastify/rate-limit store in the server's PostgreSQL (RATE_LIMIT_STORE=postgres),
 * so that several processes behind a load balancer share one budget per key.
 * One statement per hit (src/db/repositories/rate-limits.ts).
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

  incr(key: string, callback: (error: Error | null, result?: RateLimitHits) => void, timeWindow: number): void {
    hitRateLimit({ em: this.orm.em }, `rl:${key}`, timeWindow).then(
      (hits) => callback(null, hits),
      (err: Error) => callback(err),
    );
  }

  /** Every limiter shares the table (their keys differ by prefix). */
  child(): FastifyRateLimitStore {
    return this;
  }
}
