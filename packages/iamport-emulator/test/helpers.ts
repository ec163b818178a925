import http from "node:http";
import type { AddressInfo } from "node:net";
import axios, { type AxiosInstance } from "axios";
import { plainErrors } from "../../../test/support/http-errors";
import { startEmulator, type EmulatorOptions, type RunningEmulator } from "../src";

export const API_KEY = "test_key";
export const API_SECRET = "test_secret";

export interface Envelope<T = unknown> {
  code: number;
  message: string | null;
  response: T;
}

export interface TestEmulator {
  emulator: RunningEmulator;
  /** Raw client: never throws on HTTP status, so tests assert on it. */
  http: AxiosInstance;
  /** Client that sends a fresh token with every call. */
  api: AxiosInstance;
  token(): Promise<string>;
  close(): Promise<void>;
}

/** Starts an emulator on a random port with the autorun ticker off (tests drive the clock). */
export async function startTestEmulator(opts: EmulatorOptions = {}): Promise<TestEmulator> {
  const emulator = await startEmulator({ port: 0, apiKey: API_KEY, apiSecret: API_SECRET, autoRunIntervalMs: 0, ...opts });
  const client = plainErrors(axios.create({ baseURL: emulator.url, validateStatus: () => true, timeout: 10_000 }));
  const token = async () => {
    const r = await client.post<Envelope<{ access_token: string }>>("/users/getToken", { imp_key: API_KEY, imp_secret: API_SECRET });
    if (r.status !== 200) throw new Error(`getToken failed: ${r.status} ${JSON.stringify(r.data)}`);
    return r.data.response.access_token;
  };
  const api = plainErrors(axios.create({ baseURL: emulator.url, validateStatus: () => true, timeout: 10_000 }));
  api.interceptors.request.use(async (config) => {
    config.headers.set("Authorization", `Bearer ${await token()}`);
    return config;
  });
  return { emulator, http: client, api, token, close: () => emulator.close() };
}

export interface ReceivedWebhook {
  contentType: string;
  raw: string;
  body: Record<string, string>;
  headers: http.IncomingHttpHeaders;
}

/**
 * A plain node:http webhook receiver. `respond` picks the status of each
 * request (default 200), so tests can make it fail to exercise retries.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  respond: (n: number, hook: ReceivedWebhook) => number = () => 200;
  /**
   * Holds each request until `holdUntil(inFlight, arrived)` is true (checked as requests arrive), to observe
   * concurrency by what is open at once rather than by a delay a busy machine can outlast.
   */
  holdUntil?: (inFlight: number, arrived: number) => boolean;
  inFlight = 0;
  maxInFlight = 0;
  private arrived = 0;
  private held: Array<() => void> = [];
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    this.inFlight += 1;
    this.arrived += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const release = this.holdUntil ? new Promise<void>((r) => this.held.push(r)) : undefined;
    if (this.holdUntil?.(this.inFlight, this.arrived)) for (const r of this.held.splice(0)) r();
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      await release;
      this.inFlight -= 1;
      const raw = Buffer.concat(chunks).toString("utf8");
      const contentType = req.headers["content-type"] ?? "";
      const body: Record<string, string> = contentType.startsWith("application/json")
        ? (JSON.parse(raw) as Record<string, string>)
        : Object.fromEntries(new URLSearchParams(raw));
      const hook = { contentType, raw, body, headers: req.headers };
      this.received.push(hook);
      res.statusCode = this.respond(this.received.length, hook);
      res.end("ok");
      this.waiters = this.waiters.filter((w) => !w());
    });
  });
  private waiters: Array<() => boolean> = [];
  url = "";

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/webhook`;
    return this;
  }

  /** Resolves once `count` webhooks arrived (rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs = 30_000): Promise<ReceivedWebhook[]> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.received.length >= count) {
          clearTimeout(timer);
          resolve(this.received.slice());
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`expected ${count} webhooks, got ${this.received.length}`));
      }, timeoutMs);
      if (!check()) this.waiters.push(check);
    });
  }

  /** Resolves with the first webhook matching `pred` (already received or still to come). */
  waitUntil(pred: (h: ReceivedWebhook) => boolean, timeoutMs = 30_000): Promise<ReceivedWebhook> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.received.find(pred);
        if (hit) {
          clearTimeout(timer);
          resolve(hit);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error("expected webhook did not arrive"));
      }, timeoutMs);
      if (!check()) this.waiters.push(check);
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A port nothing listens on: connections are refused. */
export async function closedPortUrl(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}/webhook`;
}

let counter = 0;
/** Unique ids per test so tests within a file never collide. */
export const uid = (prefix: string): string => `${prefix}_${Date.now().toString(36)}_${(counter++).toString(36)}`;

export const CARD = {
  card_number: "4242-4242-4242-4242",
  expiry: "2099-12",
  birth: "900101",
  pwd_2digit: "12",
};

export async function issueKey(t: TestEmulator, customerUid: string, card: Partial<typeof CARD> = {}) {
  const r = await t.api.post<Envelope<Record<string, unknown>>>(`/subscribe/customers/${customerUid}`, { ...CARD, ...card });
  if (r.data.code !== 0) throw new Error(`issue failed: ${JSON.stringify(r.data)}`);
  return r.data.response;
}

export async function clockNow(t: TestEmulator): Promise<number> {
  return (await t.http.get<{ now: number }>("/__emulator/clock")).data.now;
}

export async function advance(t: TestEmulator, seconds: number) {
  const r = await t.http.post<{
    now: number;
    executed: Array<{ merchant_uid: string; imp_uid: string | null; status: string }>;
    webhooks: { delivered: number; failed: number; dropped: number };
  }>("/__emulator/clock/advance", { seconds });
  if (r.status !== 200) throw new Error(`advance failed: ${r.status} ${JSON.stringify(r.data)}`);
  return r.data;
}

/**
 * The webhooks the emulator decided to send for one payment, by URL, from its
 * delivery log. An entry is recorded before the Iamport call that caused it
 * answers, so "none here" right after a call means none was sent, with no
 * waiting for a late one.
 */
export async function webhooksSentFor(t: TestEmulator, impUid: string): Promise<{ url: string; status: string }[]> {
  const r = await t.http.get<{ webhooks: { url: string; body: { imp_uid: string; status: string } }[] }>("/__emulator/webhooks");
  return r.data.webhooks.filter((w) => w.body.imp_uid === impUid).map((w) => ({ url: w.url, status: w.body.status }));
}
