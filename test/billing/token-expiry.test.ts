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
    env: { RATE_LIMIT_PER_MINUTE: "0", RATE_LIMIT_PUBLIC_PER_MINUTE: "0" },
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
