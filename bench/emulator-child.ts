/**
 * The Iamport emulator in its own process (the emulator package's build), with
 * options the standalone `npm run emulator` does not expose: no background
 * ticker (the benchmark moves the clock) and a silent logger.
 *
 * Usage: node dist/bench/emulator-child.js '{"latencyMs":50,"webhookConcurrency":16}'
 * Prints `READY {"url": ...}` once listening.
 */
import { startEmulator } from "#iamport-emulator";

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? "{}") as { latencyMs?: number; webhookConcurrency?: number; apiKey?: string; apiSecret?: string };
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
