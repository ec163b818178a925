import http from "node:http";
import { startEmulator, type RunningEmulator } from "../src";
import { WebhookReceiver } from "./helpers";

/*
 * Scale: the same scenario on two emulators in this process, one holding
 * LARGE customers (one billing key and one schedule each) and one SMALL:
 * loading them, an advance that runs the first hours' schedules (with their
 * webhooks), look-ups, and an advance that runs the rest. Assertions are on
 * counts and correctness, and on complexity: each step's cost per item on
 * the large emulator stays within a bound of its cost on the small one, which
 * a scan of every schedule or customer per item (a cost per item growing
 * with the size, RATIO times here) exceeds. The cost is this process's CPU
 * time (the emulators, the client and the webhook receiver all run in it),
 * not wall time, so a loaded machine slows both sides and not the ratio; the
 * loading and the look-ups alternate between the two emulators besides.
 */

const SMALL = 1_000;
const RATIO = 16;
const LARGE = SMALL * RATIO;
/**
 * Per item, large over small: constant or logarithmic costs stay near 1 (the small side, measured first, pays
 * for warming up), while a cost growing with the size heads for RATIO (less the constant part of each item).
 */
const BOUND = 2;
const HOURS = 20; // schedules spread evenly over 20 hours
const CONCURRENCY = 32;

interface Json {
  code?: number;
  response?: unknown;
  [k: string]: unknown;
}

/** A lean keep-alive JSON client: at this volume axios' per-request overhead dominates. */
function jsonClient(baseUrl: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  let token = "";
  const call = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; data: Json }>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        `${baseUrl}${path}`,
        {
          method,
          agent,
          headers: {
            ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
            ...(token ? { authorization: token } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, data: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Json }));
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  return {
    call,
    setToken: (t: string) => (token = t),
    close: () => agent.destroy(),
  };
}

async function pool(count: number, worker: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await worker(next++);
    }),
  );
}

/** CPU time (microseconds) this process spends in `fn`. */
async function cpu<T>(fn: () => Promise<T>): Promise<{ value: T; us: number }> {
  const before = process.cpuUsage();
  const value = await fn();
  const used = process.cpuUsage(before);
  return { value, us: used.user + used.system };
}

interface Executed {
  merchant_uid: string;
  imp_uid: string;
  status: string;
}

/** One emulator of `customers` schedules, with its own client and webhook receiver. */
class Fleet {
  emulator!: RunningEmulator;
  hooks!: WebhookReceiver;
  client!: ReturnType<typeof jsonClient>;
  start = 0;
  /** CPU time per step, summed over its slices. */
  readonly cost: Record<string, number> = {};
  constructor(readonly customers: number) {}

  async open(): Promise<this> {
    this.hooks = await new WebhookReceiver().start();
    this.emulator = await startEmulator({ port: 0, autoRunIntervalMs: 0, webhookUrl: this.hooks.url, webhookConcurrency: 64 });
    this.client = jsonClient(this.emulator.url);
    await this.refreshToken();
    const now = (await this.client.call("GET", "/__emulator/clock")).data.now as number;
    this.start = now + 3600; // first schedule an hour from now
    return this;
  }

  async close(): Promise<void> {
    this.client?.close();
    await this.emulator?.close();
    await this.hooks?.close();
  }

  /** Tokens live 30 minutes of emulator time: one is fetched after every clock advance. */
  async refreshToken(): Promise<void> {
    const tok = await this.client.call("POST", "/users/getToken", { imp_key: "imp_apikey", imp_secret: "emulator_secret" });
    this.client.setToken(String((tok.data.response as { access_token: string }).access_token));
  }

  at(i: number): number {
    return this.start + Math.floor((i * HOURS * 3600) / this.customers);
  }

  async measure<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const { value, us } = await cpu(fn);
    this.cost[step] = (this.cost[step] ?? 0) + us;
    return value;
  }

  /** Registers customers [from, to): a key and its schedule in one call (the spec's "issue then schedule" form). */
  load(from: number, to: number): Promise<void> {
    return this.measure("load", () =>
      pool(to - from, async (k) => {
        const i = from + k;
        const r = await this.client.call("POST", "/subscribe/payments/schedule", {
          customer_uid: `scale_c${i}`,
          card_number: i % 10 === 0 ? "4000-0000-0000-0002" : "4242-4242-4242-4242", // every 10th declines
          expiry: "2099-12",
          schedules: [{ merchant_uid: `scale_m${i}`, schedule_at: this.at(i), amount: 1000 + (i % 7), name: "정기결제" }],
        });
        if (r.data.code !== 0) throw new Error(`schedule ${i}: ${JSON.stringify(r.data)}`);
      }),
    );
  }

  /** One look-up of a run schedule by imp_uid, merchant_uid, schedule and customer. */
  lookUp(i: number, e: Executed): Promise<void> {
    return this.measure("look-up", async () => {
      const c = this.client;
      const [byImp, byMerchant, schedule, customer] = await Promise.all([
        c.call("GET", `/payments/${e.imp_uid}`),
        c.call("GET", `/payments/find/scale_m${i}`),
        c.call("GET", `/subscribe/payments/schedule/scale_m${i}`),
        c.call("GET", `/subscribe/customers/scale_c${i}`),
      ]);
      expect((byImp.data.response as { merchant_uid: string }).merchant_uid).toBe(`scale_m${i}`);
      expect((byMerchant.data.response as { imp_uid: string }).imp_uid).toBe(e.imp_uid);
      expect(schedule.data.response).toMatchObject({ schedule_status: "executed", imp_uid: e.imp_uid });
      expect(customer.status).toBe(200);
    });
  }
}

describe("emulator at scale", () => {
  const small = new Fleet(SMALL);
  const large = new Fleet(LARGE);
  beforeAll(async () => {
    await small.open();
    await large.open();
  });
  afterAll(async () => {
    await small.close();
    await large.close();
  });

  it(`handles ${LARGE.toLocaleString("en")} customers and schedules: due runs, webhooks and look-ups cost per item what they cost at ${SMALL.toLocaleString("en")}`, async () => {
    const fleets = [small, large];
    // Loaded in slices that alternate between the two, so both share whatever else the machine does.
    const SLICES = 6;
    for (let s = 0; s < SLICES; s++) {
      for (const f of fleets) await f.load(Math.floor((s * f.customers) / SLICES), Math.floor(((s + 1) * f.customers) / SLICES));
    }
    for (const f of fleets) {
      const health = (await f.client.call("GET", "/__emulator/health")).data;
      expect(health).toMatchObject({ customers: f.customers, schedules: f.customers, pending_schedules: f.customers });
    }

    // Three hours in: the first three twentieths of the schedules fall due.
    const due = new Map<Fleet, { executed: Executed[]; expectedDue: number[] }>();
    for (const f of fleets) {
      const adv = await f.measure("due run with webhooks", () => f.client.call("POST", "/__emulator/clock/advance", { seconds: 3600 + 3 * 3600 - 1 }));
      const executed = adv.data.executed as Executed[];
      // Real time passed while loading, so count what is due at the clock the advance reports.
      const expectedDue = Array.from({ length: f.customers }, (_, i) => i).filter((i) => f.at(i) <= (adv.data.now as number));
      expect(executed).toHaveLength(expectedDue.length);
      expect(expectedDue.length).toBeGreaterThanOrEqual(Math.floor((f.customers * 3) / HOURS) - 1);
      // In schedule_at order, each exactly once.
      expect(executed.map((e) => e.merchant_uid)).toEqual(expectedDue.map((i) => `scale_m${i}`));
      expect(new Set(executed.map((e) => e.imp_uid)).size).toBe(executed.length);
      expect(executed.filter((e) => e.status === "failed")).toHaveLength(expectedDue.filter((i) => i % 10 === 0).length);
      expect(adv.data.webhooks).toEqual({ delivered: executed.length, failed: 0, dropped: 0 });
      expect(f.hooks.received).toHaveLength(executed.length);
      due.set(f, { executed, expectedDue });
      await f.refreshToken();
    }

    // Individual look-ups by imp_uid, merchant_uid and customer_uid, alternating between the two.
    const LOOKUPS = 300;
    for (let k = 0; k < LOOKUPS; k++) {
      for (const f of fleets) {
        const { executed, expectedDue } = due.get(f)!;
        const n = (k * 7919) % expectedDue.length;
        await f.lookUp(expectedDue[n], executed[n]);
      }
    }
    for (const f of fleets) {
      const pageOfOne = await f.client.call("GET", `/subscribe/payments/schedule/customers/scale_c${f.customers - 1}?from=${f.start - 86400}&to=${f.start + 86400}`);
      expect(pageOfOne.data.response).toMatchObject({ total: 1, next: 0 });
    }

    // The rest, without webhooks: the due index empties completely and nothing runs twice.
    for (const f of fleets) {
      f.emulator.setWebhookUrl(undefined);
      const rest = await f.measure("due run", () => f.client.call("POST", "/__emulator/clock/advance", { seconds: HOURS * 3600 }));
      expect((rest.data.executed as unknown[]).length).toBe(f.customers - due.get(f)!.executed.length);
      expect((await f.client.call("GET", "/__emulator/health")).data).toMatchObject({ pending_schedules: 0, payments: f.customers });
    }

    // Cost per item, large over small, for each step.
    const items = (f: Fleet): Record<string, number> => ({
      load: f.customers,
      "due run with webhooks": due.get(f)!.executed.length,
      "look-up": LOOKUPS,
      "due run": f.customers - due.get(f)!.executed.length,
    });
    const ratios = Object.fromEntries(
      Object.keys(items(small)).map((step) => {
        const perItem = (f: Fleet) => f.cost[step] / items(f)[step];
        return [step, Math.round((perItem(large) / perItem(small)) * 100) / 100];
      }),
    );
    console.log(`scale: cost per item at ${LARGE} over ${SMALL} customers (CPU time): ${JSON.stringify(ratios)}`);
    expect(Object.entries(ratios).filter(([, r]) => !(r <= BOUND))).toEqual([]);
  }, 600_000);
});
