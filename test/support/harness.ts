import "reflect-metadata";
import { Writable } from "node:stream";
import axios, { AxiosInstance } from "axios";
import { GraphQLClient } from "graphql-request";
import { Client } from "pg";
import { loadConfig, Config } from "../../src/config";
import { startEmulator, RunningEmulator, EmulatorOptions } from "#iamport-emulator";
import { createLogger } from "../../src/logger";
import { startServer, RunningServer } from "../../src/server";
import { plainErrors } from "./http-errors";

export const API_KEY = "test-merchant-key";

/** The real PostgreSQL server the suite uses when one is configured; undefined: the embedded database. */
export function adminDatabaseUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL || process.env.DATABASE_URL || undefined;
}

/** Creates a fresh database on the configured server (one per test file); returns its URL and a dropper. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> } | undefined> {
  const admin = adminDatabaseUrl();
  if (!admin) return undefined;
  const name = `billing_test_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
  const c = new Client({ connectionString: admin });
  await c.connect();
  await c.query(`create database "${name}"`);
  await c.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const d = new Client({ connectionString: admin });
      await d.connect();
      await d.query(`drop database if exists "${name}" with (force)`);
      await d.end();
    },
  };
}

export interface GqlResult<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; field?: string; [k: string]: unknown } }[];
}

export interface Harness {
  server: RunningServer;
  emulator: RunningEmulator;
  config: Config;
  /** Every log line the server wrote, as text. */
  logs: string[];
  /** graphql-request client with the merchant key (throws on GraphQL errors). */
  client: GraphQLClient;
  /** Raw GraphQL call that returns status, data and errors (for error assertions). */
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GqlResult<T>>;
  /** axios on the server (never throws on status). */
  http: AxiosInstance;
  /** axios on the emulator's control API and Iamport API (never throws on status). */
  emu: AxiosInstance;
  /** Runs SQL on the server's database through the server's own connection. */
  sql<T = Record<string, unknown>>(query: string, params?: unknown[]): Promise<T[]>;
  /** Moves the emulator's clock; resolves after the webhooks it caused were delivered. */
  advance(seconds: number): Promise<{ now: number; executed: { merchant_uid: string; imp_uid: string; status: string }[]; webhooks: { delivered: number; failed: number } }>;
  /** An emulator access token, for direct Iamport API calls in assertions. */
  iamportToken(): Promise<string>;
  close(): Promise<void>;
}

export type Provider = "v1" | "v2";

export interface HarnessOptions {
  env?: Record<string, string>;
  emulator?: EmulatorOptions;
  /** The provider the server charges through: Iamport V1 (default) or PortOne V2, both served by the emulator. */
  provider?: Provider;
  /**
   * A server on V1 in migration to V2 (PAYMENT_PROVIDER_MIGRATION=v1_to_v2, both providers' credentials),
   * both served by the emulator; `iamportUrl`: where the server reaches V1 instead of the emulator itself.
   */
  migration?: { iamportUrl?: string };
}

/**
 * The harnesses of this test file that are starting, or started and not closed. A beforeAll that times out
 * while its harness is still starting moves on without it, so none of the file's own hooks can close it, and
 * its server, emulator and database would run on beside the worker's next test files. Once the file's hooks
 * are done, test/support/environment.js calls `closeLeftHarnesses` (on the file's global) to close what is left.
 */
const left = new Set<Promise<Harness | undefined>>();
/** How long a start still under way at the end of the file is waited for before it is given up on. */
const LEFT_START_WAIT_MS = 120_000;

(globalThis as { closeLeftHarnesses?: () => Promise<void> }).closeLeftHarnesses = async () => {
  for (const starting of [...left]) {
    let giveUp = () => undefined as void;
    const h = await Promise.race([
      starting,
      new Promise<undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), LEFT_START_WAIT_MS);
        giveUp = () => clearTimeout(timer);
      }),
    ]);
    giveUp();
    // The file has already failed (its hook timed out): a failure to close on top of that adds nothing.
    await h?.close().catch(() => undefined);
  }
};

/**
 * Starts the emulator and the server on random ports, on a fresh database
 * (real PostgreSQL when TEST_DATABASE_URL/DATABASE_URL is set, else PGlite in memory).
 */
export function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const starting = start(opts, () => left.delete(tracked));
  const tracked: Promise<Harness | undefined> = starting.catch(() => undefined);
  left.add(tracked);
  void tracked.then((h) => {
    if (!h) left.delete(tracked);
  });
  return starting;
}

async function start(opts: HarnessOptions, onClose: () => void): Promise<Harness> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line) logs.push(line);
      cb();
    },
  });
  const logger = createLogger({ level: "debug", destination: sink });
  // Whatever was started is stopped again when a later step fails, in reverse order.
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let emulator: RunningEmulator | undefined;
  let server: RunningServer;
  let config: Config;
  try {
    db = await createTestDatabase();
    const v2 = opts.provider === "v2";
    const withV2 = v2 || opts.migration !== undefined;
    // A held answer outlasts the server's Iamport timeout many times over, so that it is the server that gives up.
    emulator = await startEmulator({ port: 0, autoRunIntervalMs: 0, timeoutHoldMs: 30_000, ...(withV2 ? { v2: { port: 0 } } : {}), ...opts.emulator });
    const migration = opts.migration
      ? {
          PAYMENT_PROVIDER_MIGRATION: "v1_to_v2",
          IAMPORT_API_KEY: "imp_apikey",
          IAMPORT_API_SECRET: "emulator_secret",
          PORTONE_API_SECRET: emulator.v2!.apiSecret,
          PORTONE_STORE_ID: emulator.v2!.storeId,
          PORTONE_CHANNEL_KEY: emulator.v2!.channelKey,
          PORTONE_WEBHOOK_SECRET: emulator.v2!.webhookSecret,
        }
      : {};
    config = loadConfig({
      NODE_ENV: "test",
      PORT: "0",
      HOST: "127.0.0.1",
      API_KEYS: API_KEY,
      RECONCILE_INTERVAL_SECONDS: "0",
      // Short enough for a test that provokes a timeout; long enough that a test holding an answer (fault "hold")
      // releases it before the server gives up, and that a loaded machine's stalled event loop is no timeout.
      IAMPORT_TIMEOUT_MS: "5000",
      ...(db ? { DATABASE_URL: db.url } : {}),
      ...(v2 ? { PAYMENT_PROVIDER: "v2" } : {}),
      ...migration,
      ...opts.env,
    });
    const portone = withV2 ? { url: emulator.v2!.url, webhookSecret: emulator.v2!.webhookSecret, clockUrl: `${emulator.url}/__emulator/clock` } : undefined;
    server = await startServer(config, { logger, iamportUrl: opts.migration?.iamportUrl ?? emulator.url, portone, embeddedInMemory: true });
  } catch (err) {
    // The start's own failure is the one worth reporting, not a failure while cleaning up after it.
    await closeInOrder([() => emulator?.close(), () => db?.drop()]).catch(() => undefined);
    throw err;
  }
  emulator.setWebhookUrl(`${server.url}/iamport-webhook`);
  emulator.v2?.setWebhookUrl(`${server.url}/portone-webhook`);
  const http = plainErrors(axios.create({ baseURL: server.url, validateStatus: () => true, timeout: 20_000, maxRedirects: 0 }));
  const emu = plainErrors(axios.create({ baseURL: emulator.url, validateStatus: () => true, timeout: 20_000 }));
  const client = new GraphQLClient(`${server.url}/graphql`, { headers: { authorization: `Bearer ${API_KEY}` } });
  let closing: Promise<void> | undefined;
  return {
    server,
    emulator,
    config,
    logs,
    client,
    http,
    emu,
    async gql(query, variables, headers) {
      const r = await http.post("/graphql", { query, variables }, { headers: { authorization: `Bearer ${API_KEY}`, ...headers } });
      return { status: r.status, data: r.data?.data, errors: r.data?.errors };
    },
    async sql(query, params = []) {
      return server.orm.em.fork().getConnection().execute(query, params as never[]);
    },
    async advance(seconds) {
      const r = await emu.post("/__emulator/clock/advance", { seconds });
      if (r.status !== 200) throw new Error(`advance failed: ${r.status} ${JSON.stringify(r.data)}`);
      return r.data;
    },
    async iamportToken() {
      const r = await emu.post("/users/getToken", { imp_key: config.emulator.apiKey, imp_secret: config.emulator.apiSecret });
      return r.data.response.access_token as string;
    },
    close() {
      // Once only, however many hooks ask (the file's own afterAll, and closeLeftHarnesses after it).
      closing ??= closeInOrder([() => server.close(), () => emulator!.close(), () => db?.drop()]).finally(onClose);
      return closing;
    },
  };
}

/** Runs every step even when one fails (so nothing is left running), then throws the first failure. */
async function closeInOrder(steps: (() => Promise<unknown> | undefined)[]): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

/** A Luhn-valid card number that the emulator charges normally. */
export const GOOD_CARD = "4242-4242-4242-4242";
export const TEST_CARDS = {
  refused: "4000-0000-0000-0119",
  declined: "4000-0000-0000-0002",
  insufficient: "4000-0000-0000-9995",
  firstOkThenDeclines: "4000-0000-0000-0341",
  firstOkThenSoftDeclines: "4000-0000-0000-3220",
  recoversAfterTwoDeclines: "4000-0000-0000-3238",
};

export const REGISTER_CARD = /* GraphQL */ `
  mutation Register($input: RegisterCardInput!) {
    registerCard(input: $input) { customerUid cardName cardNumberMasked cardType pgProvider status createdAt updatedAt }
  }
`;

export const PAYMENT_FIELDS = `merchantUid impUid customerUid name amount paidAmount cancelledAmount currency status failReason scheduledAt paidAt failedAt cancelledAt receiptUrl createdAt updatedAt`;

/** Registers a card through GraphQL; returns the customerUid. `replace` replaces the customer's active card. */
export async function registerCard(h: Harness, customerUid: string, cardNumber = GOOD_CARD, opts: { replace?: boolean } = {}): Promise<string> {
  await h.client.request(REGISTER_CARD, {
    input: { customerUid, cardNumber, expiry: "2031-12", birth: "880101", pwd2digit: "12", ...(opts.replace ? { replace: true } : {}) },
  });
  return customerUid;
}

export function uid(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
