/**
 * The Iamport emulator in its own process (the compiled dist/emulator), with
 * options the standalone `npm run emulator` does not expose: no background
 * ticker (the benchmark moves the clock) and a silent logger.
 *
 * Usage: node dist/bench/emulator-child.js '{"latencyMs":50,"webhookConcurrency":16}'
 * Prints `READY {"url": ...}` once listening.
 */
import path from "node:path";

interface EmulatorModule {
  startEmulator(opts: {
    port?: number;
    host?: string;
    apiKey?: string;
    apiSecret?: string;
    webhookUrl?: string;
    webhookConcurrency?: number;
    latencyMs?: number;
    autoRunIntervalMs?: number;
  }): Promise<{ url: string; close(): Promise<void> }>;
}

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? "{}") as { latencyMs?: number; webhookConcurrency?: number; apiKey?: string; apiSecret?: string };
  // dist/bench/emulator-child.js -> dist/emulator (compiled by `npm run build` with tsc).
  const modulePath = path.join(__dirname, "..", "emulator");
  const { startEmulator } = (await import(modulePath)) as EmulatorModule;
  const emulator = await startEmulator({
    port: 0,
    host: "127.0.0.1",
    apiKey: opts.apiKey,
    apiSecret: opts.apiSecret,
    latencyMs: opts.latencyMs ?? 0,
    webhookConcurrency: opts.webhookConcurrency ?? 16,
    autoRunIntervalMs: 0,
  });
  console.log(`READY ${JSON.stringify({ url: emulator.url })}`);
  const stop = () => {
    void emulator.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e: unknown) => {
  console.error(`emulator failed: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
