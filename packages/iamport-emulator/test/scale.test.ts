import http from "node:http";
import { startEmulator, type RunningEmulator } from "../src";
import { WebhookReceiver } from "./helpers";

/*
 * Scale: 20,000 billing keys with one schedule each, then an advance that runs
 * a few thousand of them (with their webhooks) and another that runs the rest.
 * Assertions are on counts and correctness; the only timing bounds are
 * generous ones that a linear scan per schedule or per look-up would blow.
 */

const CUSTOMERS = 20_000;
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

describe("emulator at scale", () => {
  let emulator: RunningEmulator;
  let hooks: WebhookReceiver;
  let client: ReturnType<typeof jsonClient>;
  // Tokens live 30 minutes of emulator time: fetch one after every clock advance.
  const refreshToken = async () => {
    const tok = await client.call("POST", "/users/getToken", { imp_key: "imp_apikey", imp_secret: "emulator_secret" });
    client.setToken(String((tok.data.response as { access_token: string }).access_token));
  };
  beforeAll(async () => {
    hooks = await new WebhookReceiver().start();
    emulator = await startEmulator({ port: 0, autoRunIntervalMs: 0, webhookUrl: hooks.url, webhookConcurrency: 64 });
    client = jsonClient(emulator.url);
    await refreshToken();
  });
  afterAll(async () => {
    client.close();
    await emulator.close();
    await hooks.close();
  });

  it("handles 20,000 customers and schedules: due runs, webhooks and look-ups stay fast", async () => {
    const now = (await client.call("GET", "/__emulator/clock")).data.now as number;
    const start = now + 3600; // first schedule an hour from now
    const at = (i: number) => start + Math.floor((i * HOURS * 3600) / CUSTOMERS);

    // Register a key and its schedule in one call (the spec's "issue then schedule" form).
    await pool(CUSTOMERS, async (i) => {
      const r = await client.call("POST", "/subscribe/payments/schedule", {
        customer_uid: `scale_c${i}`,
        card_number: i % 10 === 0 ? "4000-0000-0000-0002" : "4242-4242-4242-4242", // every 10th declines
        expiry: "2099-12",
        schedules: [{ merchant_uid: `scale_m${i}`, schedule_at: at(i), amount: 1000 + (i % 7), name: "정기결제" }],
      });
      if (r.data.code !== 0) throw new Error(`schedule ${i}: ${JSON.stringify(r.data)}`);
    });
    const health = (await client.call("GET", "/__emulator/health")).data;
    expect(health).toMatchObject({ customers: CUSTOMERS, schedules: CUSTOMERS, pending_schedules: CUSTOMERS });

    // Three hours in: the first 3,000 schedules fall due.
    const adv = await client.call("POST", "/__emulator/clock/advance", { seconds: 3600 + 3 * 3600 - 1 });
    const executed = adv.data.executed as Array<{ merchant_uid: string; imp_uid: string; status: string }>;
    // Real time passed while loading, so count what is due at the clock the advance reports.
    const expectedDue = Array.from({ length: CUSTOMERS }, (_, i) => i).filter((i) => at(i) <= (adv.data.now as number));
    expect(executed).toHaveLength(expectedDue.length);
    expect(expectedDue.length).toBeGreaterThanOrEqual(2900);
    // In schedule_at order, each exactly once.
    expect(executed.map((e) => e.merchant_uid)).toEqual(expectedDue.map((i) => `scale_m${i}`));
    expect(new Set(executed.map((e) => e.imp_uid)).size).toBe(executed.length);
    expect(executed.filter((e) => e.status === "failed")).toHaveLength(expectedDue.filter((i) => i % 10 === 0).length);
    expect(adv.data.webhooks).toEqual({ delivered: executed.length, failed: 0, dropped: 0 });
    expect(hooks.received).toHaveLength(executed.length);

    // Individual look-ups by imp_uid, merchant_uid and customer_uid.
    await refreshToken();
    for (let k = 0; k < 300; k++) {
      const i = expectedDue[(k * 7919) % expectedDue.length];
      const e = executed[expectedDue.indexOf(i)];
      const [byImp, byMerchant, schedule, customer] = await Promise.all([
        client.call("GET", `/payments/${e.imp_uid}`),
        client.call("GET", `/payments/find/scale_m${i}`),
        client.call("GET", `/subscribe/payments/schedule/scale_m${i}`),
        client.call("GET", `/subscribe/customers/scale_c${i}`),
      ]);
      expect((byImp.data.response as { merchant_uid: string }).merchant_uid).toBe(`scale_m${i}`);
      expect((byMerchant.data.response as { imp_uid: string }).imp_uid).toBe(e.imp_uid);
      expect(schedule.data.response).toMatchObject({ schedule_status: "executed", imp_uid: e.imp_uid });
      expect(customer.status).toBe(200);
    }
    const pageOfOne = await client.call("GET", `/subscribe/payments/schedule/customers/scale_c${CUSTOMERS - 1}?from=${start - 86400}&to=${start + 86400}`);
    expect(pageOfOne.data.response).toMatchObject({ total: 1, next: 0 });

    // The rest, without webhooks: the due index empties completely and nothing runs twice.
    emulator.setWebhookUrl(undefined);
    const rest = await client.call("POST", "/__emulator/clock/advance", { seconds: HOURS * 3600 });
    expect((rest.data.executed as unknown[]).length).toBe(CUSTOMERS - executed.length);
    expect((await client.call("GET", "/__emulator/health")).data).toMatchObject({ pending_schedules: 0, payments: CUSTOMERS });
  }, 240_000);
});
