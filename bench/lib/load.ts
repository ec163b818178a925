/** HTTP load with autocannon: a fixed number of connections for a fixed time, after a short warm-up. */
import autocannon from "autocannon";

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
  non2xx: number;
}

export interface LoadOptions {
  url: string;
  /** Request bodies; every connection goes through them in turn. */
  bodies: string[];
  headers: Record<string, string>;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
}

function run(o: LoadOptions, duration: number): Promise<autocannon.Result> {
  return autocannon({
    url: o.url,
    connections: o.connections,
    pipelining: 1,
    duration,
    timeout: 10,
    headers: { "content-type": "application/json", ...o.headers },
    requests: o.bodies.map((body) => ({ method: "POST", body })),
  });
}

export async function load(o: LoadOptions): Promise<LoadResult> {
  if (o.warmupSeconds > 0) await run(o, o.warmupSeconds);
  const r = await run(o, o.durationSeconds);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests: r.requests.total,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}
