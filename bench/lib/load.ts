/** HTTP load with autocannon: a fixed number of connections for a fixed time, after a short warm-up. */
import autocannon from "autocannon";
import { cpuSecondsOf } from "./proc";

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
  non2xx: number;
  /** CPU time the serving process used per request during the measured run (not the warm-up). */
  cpuMsPerRequest: number | null;
}

export interface LoadOptions {
  url: string;
  /** Request bodies; every connection goes through them in turn. */
  bodies: string[];
  headers: Record<string, string>;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  /** The serving process, for its CPU time per request. */
  pid?: number;
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
  const cpuBefore = o.pid ? cpuSecondsOf(o.pid) : null;
  const r = await run(o, o.durationSeconds);
  const cpuAfter = o.pid ? cpuSecondsOf(o.pid) : null;
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests: r.requests.total,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    cpuMsPerRequest: cpuBefore !== null && cpuAfter !== null && r.requests.total > 0 ? ((cpuAfter - cpuBefore) * 1000) / r.requests.total : null,
  };
}
