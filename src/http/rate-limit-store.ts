import type { MikroORM } from "@mikro-orm/postgresql";
import type { ClientRateLimitInfo, Options, Store } from "express-rate-limit";

/**
 * express-rate-limit store in the server's PostgreSQL (RATE_LIMIT_STORE=postgres),
 * so that several processes behind a load balancer share one budget per key.
 * One statement per hit: an upsert that restarts the window once it is over.
 */
export class PostgresRateLimitStore implements Store {
  private windowMs = 60_000;
  readonly localKeys = false;

  constructor(
    private readonly orm: MikroORM,
    readonly prefix: string,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  private execute<T>(sql: string, params: unknown[]): Promise<T[]> {
    return this.orm.em.getConnection().execute(sql, params as never[]);
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    const rows = await this.execute<{ hits: number; reset_at: Date }>(
      `insert into rate_limits (key, hits, reset_at) values (?, 1, now() + ? * interval '1 millisecond')
       on conflict (key) do update set
         hits = case when rate_limits.reset_at <= now() then 1 else rate_limits.hits + 1 end,
         reset_at = case when rate_limits.reset_at <= now() then excluded.reset_at else rate_limits.reset_at end
       returning hits, reset_at`,
      [`${this.prefix}:${key}`, this.windowMs],
    );
    return { totalHits: Number(rows[0].hits), resetTime: new Date(rows[0].reset_at) };
  }

  async decrement(key: string): Promise<void> {
    await this.execute(`update rate_limits set hits = greatest(hits - 1, 0) where key = ?`, [`${this.prefix}:${key}`]);
  }

  async resetKey(key: string): Promise<void> {
    await this.execute(`delete from rate_limits where key = ?`, [`${this.prefix}:${key}`]);
  }
}
