/** How long /readyz and a metrics scrape wait for the database before answering without it. */
export const DATABASE_PROBE_MS = 1000;

/** The answer of a BoundedProbe: its value, or why there is none. */
export type ProbeResult<T> = { ok: true; value: T } | { ok: false; reason: "timeout" } | { ok: false; reason: "error"; error: Error };

/**
 * A question to the database that a caller waits for at most `waitMs`, and
 * that runs at most once at a time: callers arriving while it runs share it.
 * For /readyz and the metrics that read the database: a pool exhausted by
 * waiting statements answers them "timeout" at once instead of holding them,
 * and repeated scrapes add no queue of their own. A run that outlasts its
 * callers still ends, bounded by the pool's acquire and statement timeouts.
 */
export class BoundedProbe<T> {
  private running?: Promise<T>;

  constructor(
    private readonly run: () => Promise<T>,
    private readonly waitMs: number,
  ) {}

  async ask(): Promise<ProbeResult<T>> {
    const running = (this.running ??= this.run().finally(() => {
      this.running = undefined;
    }));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<ProbeResult<T>>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, reason: "timeout" }), this.waitMs);
    });
    try {
      return await Promise.race([
        running.then(
          (value): ProbeResult<T> => ({ ok: true, value }),
          (err: unknown): ProbeResult<T> => ({ ok: false, reason: "error", error: err instanceof Error ? err : new Error(String(err)) }),
        ),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
