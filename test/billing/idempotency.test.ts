import { API_KEY, Harness, registerCard, REGISTER_CARD, uid } from "../support/harness";
import { emulatorPaymentCount, START, startSubHarness, waitFor } from "../subscriptions/helpers";

let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

interface Raw {
  status: number;
  /** The body exactly as sent. */
  text: string;
  body: { data?: Record<string, { id?: string; status?: string; merchantUid?: string }> | null; errors?: { message: string; extensions?: Record<string, unknown> }[] };
  replayed: string | undefined;
}

/** POST /graphql with an Idempotency-Key (undefined: none); the body kept as text to compare answers byte for byte. */
async function post(query: string, variables: Record<string, unknown>, key: string | undefined, bearer = API_KEY): Promise<Raw> {
  const r = await h.http.post(
    "/graphql",
    { query, variables },
    {
      headers: { authorization: `Bearer ${bearer}`, ...(key === undefined ? {} : { "idempotency-key": key }) },
      responseType: "text",
      transformResponse: (x) => x,
    },
  );
  return { status: r.status, text: r.data as string, body: JSON.parse(r.data as string), replayed: r.headers["idempotent-replayed"] as string | undefined };
}

const plan = (customerUid: string, extra: Record<string, unknown> = {}) => ({ input: { customerUid, name: "Plan", amount: 9900, interval: "MONTH", ...extra } });

async function subscriptionsOf(customerUid: string): Promise<string[]> {
  const rows = await h.sql<{ id: string }>(`select id from subscriptions where customer_uid = ? order by id`, [customerUid]);
  return rows.map((r) => r.id);
}

async function paymentsOf(customerUid: string): Promise<string[]> {
  const rows = await h.sql<{ merchant_uid: string }>(`select merchant_uid from payments where customer_uid = ? order by id`, [customerUid]);
  return rows.map((r) => r.merchant_uid);
}

describe("Idempotency-Key on mutations", () => {
  it("20 customers each sending startSubscription twice at once under one key: one subscription and one charge each, both answers identical", async () => {
    const customers: string[] = [];
    for (let i = 0; i < 20; i++) customers.push(await registerCard(h, uid("c")));
    const before = await emulatorPaymentCount(h);

    const pairs = await Promise.all(
      customers.map((c) => {
        const key = `start-${c}`;
        return Promise.all([post(START, plan(c), key), post(START, plan(c), key)]);
      }),
    );

    for (const [a, b] of pairs) {
      expect(a.body.errors).toBeUndefined();
      expect(a.status).toBe(200);
      expect(b.status).toBe(a.status);
      expect(b.text).toBe(a.text);
    }
    expect((await emulatorPaymentCount(h)) - before).toBe(20);
    for (const c of customers) expect(await subscriptionsOf(c)).toHaveLength(1);
  });

  it("a duplicate that arrives while the first is still at Iamport waits for it and gets its answer", async () => {
    const c = await registerCard(h, uid("c"));
    const before = await emulatorPaymentCount(h);
    // The first charge takes effect at Iamport but its answer is held: the first request stays in progress.
    await h.emu.post("/__emulator/faults", { route: "POST /subscribe/payments/again", mode: "timeout", times: 1 });
    const first = post(START, plan(c), `wait-${c}`);
    await waitFor(async () => (await emulatorPaymentCount(h)) === before + 1);

    const second = await post(START, plan(c), `wait-${c}`);
    const a = await first;
    expect(a.body.errors).toBeUndefined();
    expect(a.body.data?.startSubscription.status).toBe("ACTIVE");
    expect(second.status).toBe(a.status);
    expect(second.text).toBe(a.text);
    expect(await emulatorPaymentCount(h)).toBe(before + 1);
    expect(await subscriptionsOf(c)).toHaveLength(1);
  });

  it("replays the stored answer after completion without asking Iamport again", async () => {
    const c = await registerCard(h, uid("c"));
    const first = await post(START, plan(c), `replay-${c}`);
    expect(first.body.errors).toBeUndefined();
    expect(first.replayed).toBeUndefined();
    const charges = await emulatorPaymentCount(h);
    // Changed since: the replay is the answer stored then, not the subscription now.
    await h.sql(`update subscriptions set status_reason = 'changed since' where customer_uid = ?`, [c]);

    const again = await post(START, plan(c), `replay-${c}`);
    expect(again.status).toBe(first.status);
    expect(again.text).toBe(first.text);
    expect(again.replayed).toBe("true");
    expect(await emulatorPaymentCount(h)).toBe(charges);
    expect(await subscriptionsOf(c)).toHaveLength(1);
  });

  it("answers CONFLICT to the same key with a different request, and runs nothing", async () => {
    const c = await registerCard(h, uid("c"));
    const key = `conflict-${c}`;
    expect((await post(START, plan(c), key)).body.errors).toBeUndefined();
    const charges = await emulatorPaymentCount(h);

    const otherAmount = await post(START, plan(c, { amount: 12_900, allowDuplicate: true }), key);
    expect(otherAmount.status).toBe(409);
    expect(otherAmount.body.errors?.[0].extensions?.code).toBe("CONFLICT");
    expect(otherAmount.body.errors?.[0].message).toMatch(/Idempotency-Key/);
    expect(otherAmount.body.data).toBeUndefined();

    const otherDocument = await post(`mutation M($input: StartSubscriptionInput!) { startSubscription(input: $input) { id } }`, plan(c), key);
    expect(otherDocument.body.errors?.[0].extensions?.code).toBe("CONFLICT");

    expect(await emulatorPaymentCount(h)).toBe(charges);
    expect(await subscriptionsOf(c)).toHaveLength(1);
  });

  it("treats the same request with its whitespace, comments and variable order changed as the same request", async () => {
    const c = await registerCard(h, uid("c"));
    const key = `same-${c}`;
    const first = await post(START, { input: { customerUid: c, name: "Plan", amount: 9900, interval: "MONTH" } }, key);
    const reformatted = `# the same operation\n${START.replace(/\s+/g, "  ")}`;
    const again = await post(reformatted, { input: { interval: "MONTH", amount: 9900, name: "Plan", customerUid: c } }, key);
    expect(again.replayed).toBe("true");
    expect(again.text).toBe(first.text);
  });

  it("ignores the key on queries", async () => {
    const c = await registerCard(h, uid("c"));
    const key = `query-${c}`;
    const q = `query Q($c: String!) { card(customerUid: $c) { status } }`;
    expect((await post(q, { c }, key)).replayed).toBeUndefined();
    expect((await post(q, { c }, key)).replayed).toBeUndefined();
    expect(await h.sql(`select 1 from idempotency_keys where key = ?`, [key])).toHaveLength(0);
    const started = await post(START, plan(c), key);
    expect(started.body.errors).toBeUndefined();
    expect(started.body.data?.startSubscription.status).toBe("ACTIVE");
  });

  it("scopes keys to the caller: a customer token's key never meets the merchant's", async () => {
    const mine = await registerCard(h, uid("c"));
    const theirs = await registerCard(h, uid("c"));
    const key = `shared-${mine}`;
    const merchant = await post(START, plan(mine), key);
    expect(merchant.body.errors).toBeUndefined();
    const token = await h.client.request<{ createCustomerToken: { token: string } }>(
      `mutation($c: String!) { createCustomerToken(customerUid: $c, ttlSeconds: 60) { token } }`,
      { c: theirs },
    );
    const customer = await post(START, plan(theirs), key, token.createCustomerToken.token);
    expect(customer.body.errors).toBeUndefined();
    expect(customer.replayed).toBeUndefined();
    expect(customer.body.data?.startSubscription.id).not.toBe(merchant.body.data?.startSubscription.id);
    expect(await subscriptionsOf(theirs)).toHaveLength(1);
  });

  it("refuses a malformed key with BAD_USER_INPUT before running anything", async () => {
    const c = await registerCard(h, uid("c"));
    const charges = await emulatorPaymentCount(h);
    for (const key of ["k".repeat(256), "", "cl\u00e9"]) {
      const r = await post(START, plan(c), key);
      expect(r.status).toBe(400);
      expect(r.body.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "Idempotency-Key" });
    }
    expect((await post(START, plan(c), "k".repeat(255))).body.errors).toBeUndefined();
    expect(await emulatorPaymentCount(h)).toBe(charges + 1);
  });

  it("keeps no answer of a retryable failure: the retry under the same key runs again", async () => {
    const c = uid("c");
    const key = `retry-${c}`;
    const input = { customerUid: c, cardNumber: "4242-4242-4242-4242", expiry: "2031-12", birth: "880101", pwd2digit: "12" };
    await h.emu.post("/__emulator/faults", { route: "POST /subscribe/customers/{customer_uid}", mode: "http500", times: 1 });
    const failed = await post(REGISTER_CARD, { input }, key);
    expect(failed.body.errors?.[0].extensions?.code).toBe("UPSTREAM_UNAVAILABLE");
    const retried = await post(REGISTER_CARD, { input }, key);
    expect(retried.body.errors).toBeUndefined();
    expect(retried.replayed).toBeUndefined();
    expect((retried.body.data?.registerCard as { status?: string }).status).toBe("ACTIVE");
    // Only the answer (a masked number at most) and a keyed fingerprint of the request are kept.
    const rows = await h.sql<Record<string, unknown>>(`select * from idempotency_keys where key = ?`, [key]);
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toMatch(/4242-?4242-?4242-?4242|2031-12|880101/);
  });

  it("names the same order when a charge is retried under its key after the outcome was unknown: never a second charge", async () => {
    const c = await registerCard(h, uid("c"));
    const key = `charge-${c}`;
    const charge = `mutation C($input: ChargeAgainInput!) { chargeAgain(input: $input) { merchantUid status } }`;
    const vars = { input: { customerUid: c, amount: 5000, name: "One-off" } };
    const before = await emulatorPaymentCount(h);
    // Iamport fails the charge and its repeat: the server cannot tell whether anything was charged.
    await h.emu.post("/__emulator/faults", { route: "POST /subscribe/payments/again", mode: "http500", times: 2 });
    const unknown = await post(charge, vars, key);
    expect(unknown.body.errors?.[0].extensions?.code).toEqual(expect.stringMatching(/^(UPSTREAM_UNAVAILABLE|OUTCOME_UNKNOWN)$/));
    const [order] = await paymentsOf(c);

    const retried = await post(charge, vars, key);
    // Whatever the retry answers, it is about the same order, and no second one exists.
    expect(await paymentsOf(c)).toEqual([order]);
    if (!retried.body.errors) expect(retried.body.data?.chargeAgain.merchantUid).toBe(order);
    expect(await emulatorPaymentCount(h)).toBeLessThanOrEqual(before + 1);
  });

  it("takes over a claim left in progress by a process that died, and the re-run resumes the subscription instead of charging again", async () => {
    const c = await registerCard(h, uid("c"));
    const key = `crash-${c}`;
    // allowDuplicate: only the key can tell the re-run from a second subscription.
    const first = await post(START, plan(c, { allowDuplicate: true }), key);
    expect(first.body.errors).toBeUndefined();
    const charges = await emulatorPaymentCount(h);
    // As a process killed before it stored its answer leaves it.
    await h.sql(
      `update idempotency_keys set state = 'in_progress', status = null, body = null, claimed_at = now() - interval '1 hour' where key = ?`,
      [key],
    );

    const rerun = await post(START, plan(c, { allowDuplicate: true }), key);
    expect(rerun.body.errors).toBeUndefined();
    expect(rerun.replayed).toBeUndefined();
    expect(rerun.body.data?.startSubscription.id).toBe(first.body.data?.startSubscription.id);
    expect(await emulatorPaymentCount(h)).toBe(charges);
    expect(await subscriptionsOf(c)).toHaveLength(1);
    // Now stored: the next one is a replay.
    expect((await post(START, plan(c, { allowDuplicate: true }), key)).replayed).toBe("true");
  });

  it("forgets a key after 24 hours and purges it in reconciliation", async () => {
    const c = await registerCard(h, uid("c"));
    const key = `expired-${c}`;
    expect((await post(START, plan(c), key)).body.errors).toBeUndefined();
    const [row] = await h.sql<{ ttl: number }>(`select extract(epoch from expires_at - created_at)::int as ttl from idempotency_keys where key = ?`, [key]);
    expect(row.ttl).toBe(24 * 3600);
    await h.sql(`update idempotency_keys set expires_at = now() - interval '1 second' where key = ?`, [key]);

    // A different request under the expired key runs.
    const other = await post(START, plan(c, { name: "Other plan" }), key);
    expect(other.body.errors).toBeUndefined();
    expect(other.replayed).toBeUndefined();
    expect(await subscriptionsOf(c)).toHaveLength(2);

    await h.sql(`update idempotency_keys set expires_at = now() - interval '1 second' where key = ?`, [key]);
    await h.server.reconciler.runOnce();
    expect(await h.sql(`select 1 from idempotency_keys where key = ?`, [key])).toHaveLength(0);
  });
});
