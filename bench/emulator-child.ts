/**
 * The Iamport emulator in its own process, with options the standalone
 * `npm run emulator` does not expose: no background ticker (the benchmark
 * moves the clock), a silent logger, and a count of the Iamport API calls it
 * answered (the control API excluded), served on a second port so that the
 * bench can tell how many calls a renewal cost each side.
 * This file is the bench's only import of the emulator (the emulator package's build).
 *
 * Usage: node dist/bench/emulator-child.js '{"latencyMs":50,"webhookConcurrency":16}'
 * Prints `READY {"url": ..., "statsUrl": ...}` once listening.
 */
import http from "node:http";
import { startEmulator } from "#iamport-emulator";

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? "{}") as { latencyMs?: number; webhookConcurrency?: number; apiKey?: string; apiSecret?: string };
  // The emulator logs each answered Iamport call at debug level ("iamport call"); counting those
  // lines counts the calls without touching the emulator. Routes are keyed by method and path
  // with ids collapsed, e.g. "GET /payments/:id".
  const calls = new Map<string, number>();
  const count = (fields: unknown, msg: unknown) => {
    if (typeof msg !== "string" || !msg.startsWith("iamport call")) return;
    const f = fields as { method?: string; path?: string };
    const route = `${f.method ?? "?"} ${(f.path ?? "?").replace(/^\/payments\/(?!prepare|status|find|findAll|schedule)[^/]+/, "/payments/:id").replace(/^\/subscribe\/customers\/[^/]+/, "/subscribe/customers/:id")}`;
    calls.set(route, (calls.get(route) ?? 0) + 1);
  };
  const emulator = await startEmulator({
    port: 0,
    host: "127.0.0.1",
    apiKey: opts.apiKey,
    apiSecret: opts.apiSecret,
    latencyMs: opts.latencyMs ?? 0,
    webhookConcurrency: opts.webhookConcurrency ?? 16,
    autoRunIntervalMs: 0,
    logger: { info() {}, warn() {}, error() {}, debug: count },
  });
  const stats = http.createServer((_req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ calls: Object.fromEntries(calls) }));
  });
  await new Promise<void>((resolve) => stats.listen(0, "127.0.0.1", resolve));
  const statsUrl = `http://127.0.0.1:${(stats.address() as { port: number }).port}/`;
  console.log(`READY ${JSON.stringify({ url: emulator.url, statsUrl })}`);
  const stop = () => {
    stats.close();
    void emulator.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e: unknown) => {
  console.error(`emulator failed: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
