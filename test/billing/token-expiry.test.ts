import { Writable } from "node:stream";
import { IamportClient } from "../../src/iamport/iamport.client";
import { createLogger } from "../../src/logger";
import { Harness, PAYMENT_FIELDS, registerCard, startHarness, uid } from "../support/harness";

/**
 * Iamport tokens that expire while charges are in flight: every waiter shares
 * one refresh, and a call answered 401 (which Iamport did not execute) is sent
 * again with the new token under its same merchant_uid.
 */
let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    emulator: { latencyMs: 150 },
    // Twenty calls at once, each held 150 ms by the emulator, on a busy machine: the harness's 5 s Iamport
    // timeout would turn a slow answer into UPSTREAM_UNAVAILABLE, which is not what this file tests.
    env: { RATE_LIMIT_PER_MINUTE: "0", RATE_LIMIT_PUBLIC_PER_MINUTE: "0", IAMPORT_TIMEOUT_MS: "30000" },
  });
});
afterAll(async () => {
  await h?.close();
});

const CHARGE = `mutation Charge($input: ChargeAgainInput!) { chargeAgain(input: $input) { ${PAYMENT_FIELDS} } }`;

interface Health {
  payments: number;
  token_requests: number;
  tokens_issued: number;
}
const health = async (): Promise<Health> => (await h.emu.get<Health>("/__emulator/health")).data;

it("charges every one of N concurrent chargeAgain exactly once while the token expires five times, with one refresh per expiry", async () => {
  const N = 20;
  const EXPIRIES = 5;
  const customers = await Promise.all(Array.from({ length: N }, () => registerCard(h, uid("tok"))));
  const before = await health();
  for (let i = 0; i < EXPIRIES; i++) {
    expect((await h.emu.post("/__emulator/faults", { route: "*", mode: "expire_token", times: 1 })).status).toBe(201);
  }

  const merchantUids = customers.map(() => uid("tok_order"));
  const results = await Promise.all(
    customers.map((customerUid, i) => h.gql<{ chargeAgain: { status: string; merchantUid: string } }>(CHARGE, {
      input: { customerUid, amount: 1000 + i, name: "under expiry", merchantUid: merchantUids[i] },
    })),
  );

  expect(results.map((r) => r.errors?.[0]?.extensions?.code ?? r.data?.chargeAgain.status)).toEqual(Array(N).fill("PAID"));
  // Every fault was consumed: the token really expired five times under the load.
  expect((await h.emu.get("/__emulator/faults")).data.faults).toEqual([]);
  const after = await health();
  // Exactly N charges at Iamport: no call charged twice, none was lost.
  expect(after.payments - before.payments).toBe(N);
  // Single flight: one getToken per expiry (plus at most the first token), not one per waiting call.
  expect(after.token_requests - before.token_requests).toBeLessThanOrEqual(EXPIRIES + 1);
  expect(after.tokens_issued - before.tokens_issued).toBeLessThanOrEqual(EXPIRIES + 1);
  const rows = await h.sql<{ status: string }>(`select status from payments where merchant_uid in (?)`, [merchantUids]);
  expect(rows.map((r) => r.status)).toEqual(Array(N).fill("PAID"));
});

describe("a 401 after the emulator's clock moved past the token's expiry", () => {
  const unauthorizedLines = (logs: string[]) =>
    logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "iamport call" && l.iamport?.outcome === "unauthorized");

  it("is logged at info with the reason when the API is the emulator, and the call still succeeds", async () => {
    await registerCard(h, uid("clock"));
    const seen = h.logs.length;
    await h.advance(2 * 3600); // tokens live 30 minutes
    const customerUid = await registerCard(h, uid("clock"));
    expect(customerUid).toBeTruthy();
    const lines = unauthorizedLines(h.logs.slice(seen));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(l.level).toBe(30);
      expect(l.reason).toContain("emulator's clock");
    }
  });

  it("stays a warning against a real Iamport (the client is not told it talks to the emulator)", async () => {
    const logs: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logs.push(...String(chunk).split("\n").filter(Boolean));
        cb();
      },
    });
    const client = new IamportClient({
      baseUrl: h.emulator.url,
      apiKey: h.config.emulator.apiKey,
      apiSecret: h.config.emulator.apiSecret,
      timeoutMs: 2000,
      logger: createLogger({ level: "debug", destination: sink }),
    });
    const customerUid = await registerCard(h, uid("clock"));
    await client.getCustomer(customerUid);
    await h.advance(2 * 3600);
    await client.getCustomer(customerUid);
    const lines = unauthorizedLines(logs);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(l.level).toBe(40);
      expect(l.reason).toBeUndefined();
    }
  });
});
