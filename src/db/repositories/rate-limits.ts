import { query, type Scope } from "../tx";

/** A key's hits in its current window, and the milliseconds until the window ends. */
export interface RateLimitHits {
  current: number;
  ttl: number;
}

/**
 * Counts one hit of `key` in one statement: an upsert that restarts the
 * window (`windowMs` long) once it is over, so that several processes share
 * one budget per key.
 */
export async function hitRateLimit(scope: Scope, key: string, windowMs: number): Promise<RateLimitHits> {
  const [row] = await query<{ hits: number; ttl_ms: number }>(
    scope,
    `insert into rate_limits (key, hits, reset_at) values (?, 1, now() + ? * interval '1 millisecond')
     on conflict (key) do update set
       hits = case when rate_limits.reset_at <= now() then 1 else rate_limits.hits + 1 end,
       reset_at = case when rate_limits.reset_at <= now() then excluded.reset_at else rate_limits.reset_at end
     returning hits, greatest(0, extract(epoch from (reset_at - now())) * 1000)::int as ttl_ms`,
    [key, windowMs],
  );
  return { current: Number(row.hits), ttl: Number(row.ttl_ms) };
}
