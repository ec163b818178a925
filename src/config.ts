import { z } from "zod";

/** Parses "1d,3d,5d" / "12h" / "30m" / "45s" into seconds. Exported for tests. */
export function parseDurationList(value: string): number[] {
  const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  const parts = value
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  return parts.map((part) => {
    const m = /^(\d+)\s*([smhdw])$/.exec(part);
    if (!m) throw new Error(`"${part}" is not a duration like 1d, 12h, 30m or 45s`);
    const seconds = Number(m[1]) * units[m[2]];
    if (seconds <= 0) throw new Error(`"${part}" must be longer than zero`);
    return seconds;
  });
}

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ["true", "false", "1", "0", "yes", "no"].includes(v), "must be true or false")
  .transform((v) => v === "true" || v === "1" || v === "yes");

const port = z.coerce.number().int().min(0).max(65535);
const url = z.string().trim().url();
const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .optional();

/**
 * How long a request waits for a pooled connection. The embedded database has
 * one connection that every request takes in turn, so a burst queues behind it
 * for longer than on a PostgreSQL pool of many.
 */
/** A comma-separated list of durations (e.g. "1d,3d,5d") as seconds; a bad entry is a problem of its variable. */
function durationList(defaultValue: string) {
  return z
    .string()
    .trim()
    .default(defaultValue)
    .transform((v, ctx) => {
      try {
        return parseDurationList(v);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message });
        return z.NEVER;
      }
    });
}

const ACQUIRE_TIMEOUT_MS = 5000;
const EMBEDDED_ACQUIRE_TIMEOUT_MS = 30_000;

const envSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  PORT: port.default(4000),
  HOST: z.string().trim().default("0.0.0.0"),
  DATABASE_URL: optionalString.pipe(url.optional()),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(20),
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(5000),
  DATABASE_LOCK_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(5000),
  DATABASE_ACQUIRE_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).optional(),
  // Empty is refused rather than read as a place: it would open an in-memory database that looks persistent,
  // and resolve to the working directory for dev:reset, which deletes the data directory.
  PGLITE_DATA_DIR: z.string().trim().min(1, "must not be empty: unset it for ./.data/pglite, or name a directory").default("./.data/pglite"),
  IAMPORT_API_URL: optionalString.pipe(url.optional()),
  IAMPORT_API_KEY: optionalString,
  IAMPORT_API_SECRET: optionalString,
  IAMPORT_TIMEOUT_MS: z.coerce.number().int().min(100).max(120000).default(10000),
  IAMPORT_EMULATOR_PORT: port.default(4010),
  IAMPORT_EMULATOR_API_KEY: z.string().trim().min(1).default("imp_apikey"),
  IAMPORT_EMULATOR_API_SECRET: z.string().trim().min(1).default("emulator_secret"),
  IAMPORT_EMULATOR_WEBHOOK_URL: optionalString.pipe(url.optional()),
  IAMPORT_EMULATOR_STATE_FILE: optionalString,
  PAYMENT_PROVIDER: optionalString.pipe(z.enum(["v1", "v2"], { message: "must be v1 (Iamport) or v2 (PortOne V2)" }).optional()),
  PAYMENT_PROVIDER_MIGRATION: optionalString.pipe(z.enum(["v1_to_v2"], { message: "must be v1_to_v2 when set" }).optional()),
  PORTONE_API_URL: optionalString.pipe(url.optional()),
  PORTONE_API_SECRET: optionalString,
  PORTONE_STORE_ID: optionalString,
  PORTONE_CHANNEL_KEY: optionalString,
  PORTONE_WEBHOOK_SECRET: optionalString.pipe(z.string().regex(/^whsec_[A-Za-z0-9+/=]+$/, "must be the whsec_… secret of PortOne's console").optional()),
  PORTONE_EMULATOR_PORT: port.default(4011),
  PORTONE_EMULATOR_WEBHOOK_SECRET: optionalString.pipe(z.string().regex(/^whsec_[A-Za-z0-9+/=]+$/, "must look like whsec_<base64>").optional()),
  PUBLIC_URL: optionalString.pipe(url.optional()),
  API_KEYS: optionalString,
  BILLING_TIME_ZONE: z
    .string()
    .trim()
    .default("Asia/Seoul")
    .refine((tz) => {
      try {
        new Intl.DateTimeFormat("en-US", { timeZone: tz });
        return true;
      } catch {
        return false;
      }
    }, "must be an IANA time zone such as Asia/Seoul"),
  RETRY_SCHEDULE: durationList("1d,3d,5d"),
  WITHDRAWAL_DAYS: z.coerce.number().int().min(0).max(365).default(7),
  TRIAL_CONVERSION_CONSENT: z.enum(["required", "not_required"]).default("required"),
  TRIAL_NOTICE_DAYS: z.coerce.number().int().min(7, "must be at least 7 (여신전문금융업감독규정: notice 7 days before a free period ends)").max(30).default(7),
  PRICE_CHANGE_NOTICE_DAYS: z.coerce.number().int().min(30, "must be at least 30 (전자상거래법 §13⑥: notice 30 days before a price increase)").max(90).default(30),
  RENEWAL_NOTICE_DAYS: z.coerce.number().int().min(0).max(30).default(7),
  EVENT_RETRY_SCHEDULE: durationList("1m,5m,30m,2h,6h,12h,12h"),
  EVENT_DELIVERY_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  EVENT_DELIVERY_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(10),
  WEBHOOK_ALLOW_PRIVATE_URLS: optionalString.pipe(bool.optional()),
  MOBILE_REDIRECT_URL: optionalString.pipe(url.optional()),
  MIGRATE_ON_START: bool.default(true),
  RECONCILE_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(86400).default(60),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  MAX_AMOUNT: z.coerce.number().int().positive().default(100_000_000),
  CUSTOMER_TOKEN_SECRET: optionalString.pipe(z.string().min(32, "must be at least 32 characters").optional()),
  CUSTOMER_TOKEN_MAX_TTL_SECONDS: z.coerce.number().int().min(60).max(7 * 86400).default(3600),
  CORS_ORIGINS: optionalString,
  TRUST_PROXY: z
    .string()
    .trim()
    .default("false")
    .refine((v) => /^(true|false|\d+|[\w.:/, -]+)$/.test(v), "must be false, true, a hop count or a list of addresses"),
  WEBHOOK_ALLOWED_IPS: optionalString,
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).max(1_000_000).default(600),
  RATE_LIMIT_PUBLIC_PER_MINUTE: z.coerce.number().int().min(0).max(1_000_000).default(300),
  RATE_LIMIT_STORE: z.enum(["memory", "postgres"]).default("memory"),
  GRAPHQL_INTROSPECTION: optionalString.pipe(bool.optional()),
  GRAPHIQL_ENABLED: optionalString.pipe(bool.optional()),
  GRAPHQL_MAX_DEPTH: z.coerce.number().int().min(2).max(50).default(8),
  GRAPHQL_MAX_ALIASES: z.coerce.number().int().min(0).max(100).default(15),
  GRAPHQL_MAX_TOKENS: z.coerce.number().int().min(50).max(100_000).default(2000),
  GRAPHQL_MAX_COST: z.coerce.number().int().min(10).max(1_000_000).default(5000),
  SHUTDOWN_DRAIN_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  BODY_LIMIT: z
    .string()
    .trim()
    .default("100kb")
    .refine((v) => /^\d+(b|kb|mb)$/i.test(v), "must be a size such as 100kb"),
});

export type Env = z.input<typeof envSchema>;

/** Every environment variable the server reads. */
export const ENV_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

export interface Config {
  env: "development" | "production" | "test";
  port: number;
  host: string;
  /** undefined: the embedded PGlite database is used. */
  databaseUrl?: string;
  databasePoolMax: number;
  /** Bounds on every pooled connection's waits; 0 turns a statement or lock timeout off (see src/db/orm.ts). */
  databaseTimeouts: DatabaseTimeouts;
  pgliteDataDir: string;
  iamport: {
    /** undefined: the in-process emulator is started and used. */
    apiUrl?: string;
    apiKey?: string;
    apiSecret?: string;
    timeoutMs: number;
    useEmulator: boolean;
  };
  /** Which provider the billing core charges through: Iamport V1 or PortOne V2. */
  provider: "v1" | "v2";
  /** v1_to_v2: both providers' credentials are set while `npm run migrate:v2` moves V1's subscriptions to V2. */
  migration?: "v1_to_v2";
  portone: {
    /** undefined with useEmulator: the in-process emulator's V2 API. */
    apiUrl?: string;
    apiSecret?: string;
    storeId?: string;
    channelKey?: string;
    webhookSecret?: string;
    useEmulator: boolean;
  };
  emulator: {
    port: number;
    /** PortOne V2's port of the in-process emulator (PAYMENT_PROVIDER=v2 without credentials). */
    v2Port: number;
    v2WebhookSecret?: string;
    apiKey: string;
    apiSecret: string;
    webhookUrl?: string;
    /** Where the in-process emulator keeps its state; unset: inside the embedded data directory outside tests, else memory. */
    stateFile?: string;
  };
  /** This server's public base; derived from the listening port unless PUBLIC_URL is set. */
  publicUrl: string;
  publicUrlExplicit: boolean;
  /** Accepted API keys; empty in development means "generate one". */
  apiKeys: string[];
  billingTimeZone: string;
  retryScheduleSeconds: number[];
  /** Days after a payment in which cancellationPreview reports it within the withdrawal window. */
  withdrawalDays: number;
  lifecycle: LifecycleConfig;
  events: EventsConfig;
  mobileRedirectUrl?: string;
  migrateOnStart: boolean;
  reconcileIntervalSeconds: number;
  logLevel: string;
  maxAmount: number;
  /** HS256 secret of customer tokens; generated per process in development when unset. */
  customerTokenSecret?: string;
  customerTokenMaxTtlSeconds: number;
  corsOrigins: string[];
  /** Fastify's `trustProxy`: false, true, a hop count, or addresses/subnets. */
  trustProxy: boolean | number | string;
  /** Source addresses allowed on the webhook routes; empty: any. */
  webhookAllowedIps: string[];
  rateLimitPerMinute: number;
  rateLimitPublicPerMinute: number;
  rateLimitStore: "memory" | "postgres";
  introspection: boolean;
  graphiqlEnabled: boolean;
  graphqlLimits: { maxDepth: number; maxAliases: number; maxTokens: number; maxCost: number };
  bodyLimit: string;
  /** How long a shutdown waits for in-flight requests before closing their connections. */
  shutdownDrainMs: number;
}

/** Korean recurring-billing rules (README "Korean recurring-billing rules"). */
export interface LifecycleConfig {
  /** required: a trial becomes paid only with the customer's consent; not_required: it converts by itself (outside Korea). */
  trialConversionConsent: "required" | "not_required";
  /** Days before a trial's end that its notice goes out. */
  trialNoticeDays: number;
  /** Days before a price change's first renewal at the new amount that its notice goes out. */
  priceChangeNoticeDays: number;
  /** Days before each renewal of a monthly or longer subscription that its notice goes out; 0: none. */
  renewalNoticeDays: number;
}

export interface EventsConfig {
  /** Waits between delivery attempts of one event to one endpoint (jittered); after the last, FAILED. */
  retryScheduleSeconds: number[];
  /** How long one attempt waits for the endpoint's answer. */
  deliveryTimeoutMs: number;
  /** Attempts one process makes at once. */
  deliveryConcurrency: number;
  /** Endpoint URLs may name private, loopback and link-local addresses (default: outside production). */
  allowPrivateUrls: boolean;
}

export interface DatabaseTimeouts {
  statementMs: number;
  lockMs: number;
  acquireMs: number;
}

export interface ConfigProblem {
  variable: string;
  message: string;
}

/** Every invalid or missing variable at once, in one line: a deployment learns them all from one start. */
export class ConfigError extends Error {
  /** The first variable named (all of them are in `problems`). */
  readonly variable: string;

  constructor(readonly problems: ConfigProblem[]) {
    super(`Invalid configuration: ${problems.map((p) => `${p.variable} ${p.message}`).join("; ")}`);
    this.name = "ConfigError";
    this.variable = problems[0].variable;
  }
}

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
}

/** Validates the environment once; everything else receives the typed Config. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const problems: ConfigProblem[] = [];
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const named = new Set<string>();
    for (const issue of parsed.error.issues) {
      const variable = String(issue.path[0] ?? "environment");
      // One problem per variable: zod may report several for one value.
      if (!named.has(variable)) problems.push({ variable, message: issue.message });
      named.add(variable);
    }
  }
  // The rules between variables read the raw values, so that they are reported with the invalid ones.
  const raw = (name: string): string | undefined => {
    const v = source[name]?.trim();
    return v ? v : undefined;
  };
  const production = raw("NODE_ENV") === "production";
  const apiKey = raw("IAMPORT_API_KEY");
  if ((apiKey === undefined) !== (raw("IAMPORT_API_SECRET") === undefined)) {
    problems.push({
      variable: apiKey ? "IAMPORT_API_SECRET" : "IAMPORT_API_KEY",
      message: "must be set together with its pair (IAMPORT_API_KEY and IAMPORT_API_SECRET)",
    });
  }
  if (production && list(raw("API_KEYS")).length === 0) problems.push({ variable: "API_KEYS", message: "is required when NODE_ENV=production" });
  const v2Secret = raw("PORTONE_API_SECRET");
  const migration = raw("PAYMENT_PROVIDER_MIGRATION");
  if (apiKey !== undefined && v2Secret !== undefined && migration === undefined) {
    problems.push({
      variable: "PORTONE_API_SECRET",
      message: "and IAMPORT_API_KEY are both set: choose one provider (unset the other), or set PAYMENT_PROVIDER_MIGRATION=v1_to_v2 while moving V1's subscriptions to V2",
    });
  }
  if (migration !== undefined && (apiKey === undefined || v2Secret === undefined)) {
    problems.push({ variable: "PAYMENT_PROVIDER_MIGRATION", message: "needs both IAMPORT_API_KEY/IAMPORT_API_SECRET (V1) and PORTONE_API_SECRET (V2)" });
  }
  if (v2Secret !== undefined) {
    for (const v of ["PORTONE_CHANNEL_KEY", "PORTONE_WEBHOOK_SECRET"]) {
      if (raw(v) === undefined) problems.push({ variable: v, message: "is required with PORTONE_API_SECRET (PortOne's console: the channel that issues billing keys, and the webhook secret)" });
    }
  }
  if (raw("PAYMENT_PROVIDER") === "v1" && v2Secret !== undefined && apiKey === undefined) {
    problems.push({ variable: "PAYMENT_PROVIDER", message: "is v1 but only PortOne V2's credentials (PORTONE_API_SECRET) are set" });
  }
  if (raw("PAYMENT_PROVIDER") === "v2" && apiKey !== undefined && v2Secret === undefined) {
    problems.push({ variable: "PAYMENT_PROVIDER", message: "is v2 but only Iamport V1's credentials (IAMPORT_API_KEY) are set" });
  }
  if (production && apiKey === undefined && v2Secret === undefined) {
    problems.push({ variable: "IAMPORT_API_KEY", message: "or PORTONE_API_SECRET is required when NODE_ENV=production (the emulator is for development)" });
  }
  if (production && raw("CUSTOMER_TOKEN_SECRET") === undefined) {
    problems.push({ variable: "CUSTOMER_TOKEN_SECRET", message: "is required when NODE_ENV=production (at least 32 characters)" });
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;
  const apiKeys = list(e.API_KEYS);
  const useEmulator = e.IAMPORT_API_KEY === undefined;
  // V2 when chosen or when only its credentials are set; V1 otherwise, including while migrating from it
  // (V1's pending charges still settle there until the server is switched).
  const provider = e.PAYMENT_PROVIDER ?? (e.PORTONE_API_SECRET !== undefined && e.PAYMENT_PROVIDER_MIGRATION === undefined ? "v2" : "v1");
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    databaseTimeouts: { statementMs: e.DATABASE_STATEMENT_TIMEOUT_MS, lockMs: e.DATABASE_LOCK_TIMEOUT_MS, acquireMs: e.DATABASE_ACQUIRE_TIMEOUT_MS ?? (e.DATABASE_URL ? ACQUIRE_TIMEOUT_MS : EMBEDDED_ACQUIRE_TIMEOUT_MS) },
    pgliteDataDir: e.PGLITE_DATA_DIR,
    iamport: {
      apiUrl: e.IAMPORT_API_URL ?? (useEmulator ? undefined : "https://api.iamport.kr"),
      apiKey: e.IAMPORT_API_KEY,
      apiSecret: e.IAMPORT_API_SECRET,
      timeoutMs: e.IAMPORT_TIMEOUT_MS,
      useEmulator,
    },
    provider,
    migration: e.PAYMENT_PROVIDER_MIGRATION,
    portone: {
      apiUrl: e.PORTONE_API_URL ?? (e.PORTONE_API_SECRET === undefined ? undefined : "https://api.portone.io"),
      apiSecret: e.PORTONE_API_SECRET,
      storeId: e.PORTONE_STORE_ID,
      channelKey: e.PORTONE_CHANNEL_KEY,
      webhookSecret: e.PORTONE_WEBHOOK_SECRET,
      useEmulator: e.PORTONE_API_SECRET === undefined,
    },
    emulator: {
      port: e.IAMPORT_EMULATOR_PORT,
      v2Port: e.PORTONE_EMULATOR_PORT,
      v2WebhookSecret: e.PORTONE_EMULATOR_WEBHOOK_SECRET,
      apiKey: e.IAMPORT_EMULATOR_API_KEY,
      apiSecret: e.IAMPORT_EMULATOR_API_SECRET,
      webhookUrl: e.IAMPORT_EMULATOR_WEBHOOK_URL,
      stateFile: e.IAMPORT_EMULATOR_STATE_FILE,
    },
    publicUrl: (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ""),
    publicUrlExplicit: e.PUBLIC_URL !== undefined,
    apiKeys,
    billingTimeZone: e.BILLING_TIME_ZONE,
    retryScheduleSeconds: e.RETRY_SCHEDULE,
    withdrawalDays: e.WITHDRAWAL_DAYS,
    lifecycle: {
      trialConversionConsent: e.TRIAL_CONVERSION_CONSENT,
      trialNoticeDays: e.TRIAL_NOTICE_DAYS,
      priceChangeNoticeDays: e.PRICE_CHANGE_NOTICE_DAYS,
      renewalNoticeDays: e.RENEWAL_NOTICE_DAYS,
    },
    events: {
      retryScheduleSeconds: e.EVENT_RETRY_SCHEDULE,
      deliveryTimeoutMs: e.EVENT_DELIVERY_TIMEOUT_MS,
      deliveryConcurrency: e.EVENT_DELIVERY_CONCURRENCY,
      allowPrivateUrls: e.WEBHOOK_ALLOW_PRIVATE_URLS ?? e.NODE_ENV !== "production",
    },
    mobileRedirectUrl: e.MOBILE_REDIRECT_URL,
    migrateOnStart: e.MIGRATE_ON_START,
    reconcileIntervalSeconds: e.RECONCILE_INTERVAL_SECONDS,
    logLevel: e.LOG_LEVEL,
    maxAmount: e.MAX_AMOUNT,
    customerTokenSecret: e.CUSTOMER_TOKEN_SECRET,
    customerTokenMaxTtlSeconds: e.CUSTOMER_TOKEN_MAX_TTL_SECONDS,
    corsOrigins: list(e.CORS_ORIGINS),
    trustProxy: e.TRUST_PROXY === "true" ? true : e.TRUST_PROXY === "false" ? false : /^\d+$/.test(e.TRUST_PROXY) ? Number(e.TRUST_PROXY) : e.TRUST_PROXY,
    webhookAllowedIps: list(e.WEBHOOK_ALLOWED_IPS),
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    rateLimitPublicPerMinute: e.RATE_LIMIT_PUBLIC_PER_MINUTE,
    rateLimitStore: e.RATE_LIMIT_STORE,
    introspection: e.GRAPHQL_INTROSPECTION ?? e.NODE_ENV !== "production",
    graphiqlEnabled: e.GRAPHIQL_ENABLED ?? e.NODE_ENV !== "production",
    graphqlLimits: {
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxCost: e.GRAPHQL_MAX_COST,
    },
    bodyLimit: e.BODY_LIMIT.toLowerCase(),
    shutdownDrainMs: e.SHUTDOWN_DRAIN_MS,
  };
}

/** Which secrets are set, never their values: for the start-up log. */
export function describeSecrets(config: Config): Record<string, "set" | "unset"> {
  return {
    IAMPORT_API_SECRET: config.iamport.apiSecret ? "set" : "unset",
    PORTONE_API_SECRET: config.portone.apiSecret ? "set" : "unset",
    PORTONE_WEBHOOK_SECRET: config.portone.webhookSecret ? "set" : "unset",
    API_KEYS: config.apiKeys.length > 0 ? "set" : "unset",
    CUSTOMER_TOKEN_SECRET: config.customerTokenSecret ? "set" : "unset",
  };
}

/** Whether a URL points at this machine only (localhost, 127.0.0.0/8, ::1, 0.0.0.0). */
export function isLoopbackUrl(value: string): boolean {
  let host: string;
  try {
    host = new URL(value).hostname.toLowerCase().replace(/^\[|\]$/g, "");
  } catch {
    return false;
  }
  return host === "localhost" || host.endsWith(".localhost") || /^127\.\d+\.\d+\.\d+$/.test(host) || host === "::1" || host === "0.0.0.0";
}

/** Valid settings that are probably a mistake: logged as warnings at start, never refused. */
export function configWarnings(config: Config): ConfigProblem[] {
  const warnings: ConfigProblem[] = [];
  if (config.env === "production" && isLoopbackUrl(config.publicUrl)) {
    warnings.push({
      variable: "PUBLIC_URL",
      message:
        `${config.publicUrlExplicit ? "is" : "is not set and defaults to"} ${config.publicUrl}, a loopback address Iamport cannot reach: ` +
        "the schedules' webhooks (notice_url) never arrive and renewals wait for reconciliation; set PUBLIC_URL to this server's public address",
    });
  }
  if (config.lifecycle.trialConversionConsent === "not_required") {
    warnings.push({
      variable: "TRIAL_CONVERSION_CONSENT",
      message:
        "is not_required: free trials turn paid at their end without the customer's consent, which Korean law " +
        "(전자상거래법 §13⑥, 시행령 §20-2) forbids for customers in Korea; use it only for merchants outside Korea",
    });
  }
  return warnings;
}
