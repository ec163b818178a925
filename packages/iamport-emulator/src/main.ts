#!/usr/bin/env node
/**
 * The standalone Iamport emulator: the package's `iamport-emulator` bin
 * (`npm run emulator` from the billing server's root).
 * Configured by IAMPORT_EMULATOR_* environment variables; PortOne V2's API
 * starts beside it, configured by PORTONE_EMULATOR_* (PORTONE_EMULATOR_PORT=off leaves it out).
 */
import { z } from "zod";
import { startEmulator, type EmulatorLogger } from "./emulator";

const intVar = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`);

const envSchema = z.object({
  IAMPORT_EMULATOR_PORT: intVar(0, 65535).default(4010),
  IAMPORT_EMULATOR_HOST: z.string().min(1).default("127.0.0.1"),
  IAMPORT_EMULATOR_API_KEY: z.string().min(1).default("imp_apikey"),
  IAMPORT_EMULATOR_API_SECRET: z.string().min(1).default("emulator_secret"),
  IAMPORT_EMULATOR_WEBHOOK_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  IAMPORT_EMULATOR_WEBHOOK_CONCURRENCY: intVar(1, 10_000).default(16),
  IAMPORT_EMULATOR_WEBHOOK_CONTENT_TYPE: z.enum(["json", "form"]).default("json"),
  IAMPORT_EMULATOR_WEBHOOK_RETRIES: intVar(0, 100).default(0),
  IAMPORT_EMULATOR_LATENCY_MS: intVar(0, 600_000).default(0),
  IAMPORT_EMULATOR_STATE_FILE: z.string().min(1).optional(),
  IAMPORT_EMULATOR_V2_WEBHOOK_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  PORTONE_EMULATOR_PORT: z.union([z.literal("off"), intVar(0, 65535)]).default(4011),
  PORTONE_EMULATOR_API_SECRET: z.string().min(1).default("portone_emulator_secret"),
  PORTONE_EMULATOR_STORE_ID: z.string().min(1).default("store-emulator"),
  PORTONE_EMULATOR_CHANNEL_KEY: z.string().min(1).default("channel-key-emulator"),
  // Standard Webhooks' format: whsec_ and the base64 of at least 16 key bytes.
  PORTONE_EMULATOR_WEBHOOK_SECRET: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, "must be whsec_ followed by base64")
    .refine((v) => Buffer.from(v.slice("whsec_".length), "base64").length >= 16, "must hold at least 16 bytes of key")
    .optional(),
});

/** Parses the environment; on a bad variable, one line naming it. */
export function readEmulatorEnv(env: NodeJS.ProcessEnv) {
  // Empty variables count as unset, as shells often export them that way.
  const present = Object.fromEntries(
    Object.entries(env).filter(([k, v]) => (k.startsWith("IAMPORT_EMULATOR_") || k.startsWith("PORTONE_EMULATOR_")) && v !== ""),
  );
  const r = envSchema.safeParse(present);
  if (!r.success) {
    const issue = r.error.issues[0];
    const name = String(issue.path[0] ?? "environment");
    throw new Error(`Invalid ${name}: ${issue.message} (got ${JSON.stringify(present[name])})`);
  }
  return r.data;
}

function consoleLogger(): EmulatorLogger {
  const line = (level: string, args: unknown[]) => {
    const [first, second] = args;
    const msg = typeof first === "string" ? first : typeof second === "string" ? second : "";
    const fields = typeof first === "object" && first !== null ? ` ${JSON.stringify(first, (_k, v) => (v instanceof Error ? v.message : v))}` : "";
    return `${new Date().toISOString()} ${level} [iamport-emulator] ${msg}${fields}`;
  };
  return {
    info: (...a) => console.log(line("INFO", a)),
    warn: (...a) => console.warn(line("WARN", a)),
    error: (...a) => console.error(line("ERROR", a)),
  };
}

async function main(): Promise<void> {
  let env: ReturnType<typeof readEmulatorEnv>;
  try {
    env = readEmulatorEnv(process.env);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
  const logger = consoleLogger();
  const emulator = await startEmulator({
    port: env.IAMPORT_EMULATOR_PORT,
    host: env.IAMPORT_EMULATOR_HOST,
    apiKey: env.IAMPORT_EMULATOR_API_KEY,
    apiSecret: env.IAMPORT_EMULATOR_API_SECRET,
    webhookUrl: env.IAMPORT_EMULATOR_WEBHOOK_URL,
    webhookConcurrency: env.IAMPORT_EMULATOR_WEBHOOK_CONCURRENCY,
    webhookContentType: env.IAMPORT_EMULATOR_WEBHOOK_CONTENT_TYPE,
    webhookRetries: env.IAMPORT_EMULATOR_WEBHOOK_RETRIES,
    latencyMs: env.IAMPORT_EMULATOR_LATENCY_MS,
    stateFile: env.IAMPORT_EMULATOR_STATE_FILE,
    logger,
    v2:
      env.PORTONE_EMULATOR_PORT === "off"
        ? undefined
        : {
            port: env.PORTONE_EMULATOR_PORT,
            apiSecret: env.PORTONE_EMULATOR_API_SECRET,
            storeId: env.PORTONE_EMULATOR_STORE_ID,
            channelKey: env.PORTONE_EMULATOR_CHANNEL_KEY,
            webhookUrl: env.IAMPORT_EMULATOR_V2_WEBHOOK_URL,
            webhookSecret: env.PORTONE_EMULATOR_WEBHOOK_SECRET,
          },
  });
  if (emulator.v2) {
    // The receiver needs this secret to verify the V2 webhooks; it is the emulator's, not a real store's.
    logger.info({ webhookSecret: emulator.v2.webhookSecret }, "PortOne V2 emulator webhook secret (set PORTONE_WEBHOOK_SECRET to it)");
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping the Iamport emulator`);
    emulator.close().then(
      () => process.exit(0),
      (e: unknown) => {
        console.error(e);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(`Iamport emulator failed to start: ${(e as Error).message}`);
    process.exit(1);
  });
}
