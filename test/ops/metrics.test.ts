import { Harness, registerCard, startHarness, uid } from "../support/harness";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

/** The value of one sample line of the Prometheus text, or 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (want.every((l) => line.includes(l))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return 0;
}

async function scrape(): Promise<string> {
  const r = await h.http.get("/metrics");
  expect(r.status).toBe(200);
  expect(r.headers["content-type"]).toContain("text/plain");
  return r.data as string;
}

describe("/metrics", () => {
  it("moves the counters of a whole flow: GraphQL, Iamport calls, webhooks, renewals, reconciliation, subscriptions, pool", async () => {
    const before = await scrape();
    const customerUid = await registerCard(h, uid("m"));
    await h.client.request(`mutation Charge($c: String!) { chargeAgain(input: {customerUid: $c, amount: 1000, name: "m"}) { status } }`, { c: customerUid });
    const bad = await h.gql(`mutation Charge($c: String!) { chargeAgain(input: {customerUid: $c, amount: -1, name: "m"}) { status } }`, { c: customerUid });
    expect(bad.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
    const sub = await h.client.request<{ startSubscription: { nextPaymentAt: string } }>(
      `mutation Start($c: String!) { startSubscription(input: {customerUid: $c, name: "daily", amount: 300, interval: DAY}) { nextPaymentAt } }`,
      { c: customerUid },
    );
    const clock = await h.emu.get("/__emulator/clock");
    const due = Math.ceil(new Date(sub.startSubscription.nextPaymentAt).getTime() / 1000) - clock.data.now + 5;
    const advanced = await h.advance(due);
    expect(advanced.webhooks.delivered).toBeGreaterThanOrEqual(1);
    await h.server.reconciler.runOnce();

    const after = await scrape();
    const grew = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    expect(grew("billing_graphql_operation_duration_seconds_count", { operation: "Charge", outcome: "ok" })).toBe(1);
    expect(grew("billing_graphql_operation_duration_seconds_count", { operation: "Charge", outcome: "BAD_USER_INPUT" })).toBe(1);
    expect(grew("billing_iamport_call_duration_seconds_count", { endpoint: "POST /subscribe/payments/again", result: "ok" })).toBe(2);
    expect(grew("billing_iamport_call_duration_seconds_count", { endpoint: "POST /subscribe/payments/schedule", result: "ok" })).toBeGreaterThanOrEqual(2);
    expect(grew("billing_webhooks_total", { route: "/iamport-callback/schedule", outcome: "handled" })).toBeGreaterThanOrEqual(1);
    expect(grew("billing_renewals_total", { result: "paid" })).toBe(1);
    expect(grew("billing_reconciliations_total", { result: "ok" })).toBe(1);
    expect(grew("billing_http_request_duration_seconds_count", { method: "POST", route: "/graphql", status: "200" })).toBeGreaterThanOrEqual(4);
    expect(sample(after, "billing_subscriptions", { status: "ACTIVE" })).toBe(1);
    expect(after).toMatch(/billing_db_pool_connections\{state="used"\} \d+/);
    expect(after).toContain("billing_process_resident_memory_bytes");
  });

  it("labels unknown paths as `other`, never by the raw path", async () => {
    await h.http.get("/no/such/path/secret-token-123");
    const text = await scrape();
    expect(text).not.toContain("secret-token-123");
    expect(sample(text, "billing_http_request_duration_seconds_count", { route: "other", status: "404" })).toBeGreaterThanOrEqual(1);
  });
});
