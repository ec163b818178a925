import { Harness, PAYMENT_FIELDS, registerCard, startHarness, uid } from "../support/harness";

/**
 * The webhook inbox (POST /iamport-webhook, POST /iamport-callback/schedule):
 * JSON and form bodies, orders that are not ours, bad bodies, the audit trail
 * in webhook_events, Iamport outages, and duplicate/concurrent deliveries.
 */

let h: Harness;
beforeAll(async () => {
  // Duplicate deliveries of one webhook wait on each other's row lock while the first registers the next charge at
  // Iamport; on a loaded machine the last of ten can wait longer than the default 5 s lock timeout and be answered
  // 503 (as test/subscriptions/concurrency.test.ts says). Bounded waits are test/ops/db-timeouts.test.ts's.
  h = await startHarness({ env: { DATABASE_LOCK_TIMEOUT_MS: "60000", DATABASE_STATEMENT_TIMEOUT_MS: "60000" } });
});
afterAll(async () => {
  await h?.close();
});

const PREPARE = `mutation Prepare($input: PreparePaymentInput!) { preparePayment(input: $input) { merchantUid } }`;
const FORM = { headers: { "content-type": "application/x-www-form-urlencoded" } };

async function prepare(amount: number): Promise<string> {
  const merchantUid = uid("wh");
  await h.client.request(PREPARE, { input: { amount, name: "Webhook order", merchantUid } });
  return merchantUid;
}

/** A paid browser payment whose own webhook was dropped, so the test delivers it. */
async function paidSilently(merchantUid: string, amount: number, extra: Record<string, unknown> = {}): Promise<string> {
  await h.emu.post("/__emulator/faults", { mode: "drop_webhook", times: 1 });
  const r = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount, ...extra });
  expect(r.data.webhooks.dropped).toBe(1);
  return r.data.imp_uid as string;
}

async function status(merchantUid: string): Promise<string | undefined> {
  return (await h.sql<{ status: string }>(`select status from payments where merchant_uid = ?`, [merchantUid]))[0]?.status;
}

async function events(impUid: string) {
  return h.sql<{ source: string; outcome: string | null; processed_at: Date | null; claimed_status: string | null; merchant_uid: string | null; attempts: number; body: unknown }>(
    `select source, outcome, processed_at, claimed_status, merchant_uid, attempts, body from webhook_events where imp_uid = ? order by id`,
    [impUid],
  );
}

async function eventCount(): Promise<number> {
  return Number((await h.sql<{ n: string }>(`select count(*) as n from webhook_events`))[0].n);
}

describe("POST /iamport-webhook", () => {
  it("accepts a JSON body, re-queries Iamport and records the event with its outcome", async () => {
    const merchantUid = await prepare(2000);
    const impUid = await paidSilently(merchantUid, 2000);
    expect(await status(merchantUid)).toBe("PENDING");
    const r = await h.http.post("/iamport-webhook", { imp_uid: impUid, merchant_uid: merchantUid, status: "paid" });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "ok", outcome: "PAID" });
    expect(await status(merchantUid)).toBe("PAID");
    const ev = await events(impUid);
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ source: "iamport-webhook", outcome: "PAID", claimed_status: "paid", merchant_uid: merchantUid, attempts: 1 });
    expect(ev[0].processed_at).not.toBeNull();
    expect(ev[0].body).toEqual({ imp_uid: impUid, merchant_uid: merchantUid, status: "paid" });
  });

  it("reads a JSON body that starts with a UTF-8 byte-order mark, as express.json() does, here and on /graphql", async () => {
    const merchantUid = await prepare(2100);
    const impUid = await paidSilently(merchantUid, 2100);
    const bom = (o: unknown) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(o))]);
    const json = { "content-type": "application/json" };
    const r = await h.http.post("/iamport-webhook", bom({ imp_uid: impUid, merchant_uid: merchantUid }), { headers: json });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "ok", outcome: "PAID" });
    const q = await h.http.post("/graphql", bom({ query: `{ payment(merchantUid: "${merchantUid}") { status } }` }), {
      headers: { ...json, authorization: "Bearer test-merchant-key" },
    });
    expect(q.status).toBe(200);
    expect(q.data).toEqual({ data: { payment: { status: "PAID" } } });
  });

  it("accepts a form body (application/x-www-form-urlencoded)", async () => {
    const merchantUid = await prepare(2100);
    const impUid = await paidSilently(merchantUid, 2100);
    const r = await h.http.post("/iamport-webhook", new URLSearchParams({ imp_uid: impUid, merchant_uid: merchantUid, status: "paid" }).toString(), FORM);
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "ok", outcome: "PAID" });
    expect(await status(merchantUid)).toBe("PAID");
    expect((await events(impUid))[0]).toMatchObject({ outcome: "PAID", claimed_status: "paid" });
  });

  it("treats the body as a hint: a claimed 'paid' for a blocked payment is recorded FAILED", async () => {
    const merchantUid = await prepare(5000);
    const blocked = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount: 50 });
    expect(blocked.data.status).toBe("failed");
    const r = await h.http.post("/iamport-webhook", { imp_uid: blocked.data.imp_uid, merchant_uid: merchantUid, status: "paid" });
    expect(r.status).toBe(200);
    expect(r.data.outcome).toBe("FAILED");
    expect(await status(merchantUid)).toBe("FAILED");
  });

  it("ignores the merchant_uid of the body: Iamport's own merchant_uid decides which order is updated", async () => {
    const real = await prepare(3000);
    const other = await prepare(3000);
    const impUid = await paidSilently(real, 3000);
    const r = await h.http.post("/iamport-webhook", { imp_uid: impUid, merchant_uid: other, status: "paid" });
    expect(r.status).toBe(200);
    expect(await status(real)).toBe("PAID");
    expect(await status(other)).toBe("PENDING");
  });

  it("answers 200 'ignored' for a payment of an order this server does not know, and records it", async () => {
    const stranger = uid("stranger");
    const c = await h.emu.post("/__emulator/checkout", { merchant_uid: stranger, amount: 1000 });
    // The emulator's own delivery got a 2xx: Iamport would not retry.
    expect(c.data.webhooks).toMatchObject({ delivered: 1, failed: 0 });
    const again = await h.http.post("/iamport-webhook", { imp_uid: c.data.imp_uid, merchant_uid: stranger, status: "paid" });
    expect(again.status).toBe(200);
    expect(again.data.status).toBe("ignored");
    expect(await status(stranger)).toBeUndefined();
    const ev = await events(c.data.imp_uid);
    expect(ev).toHaveLength(2);
    for (const e of ev) {
      expect(e.outcome).toMatch(/^ignored: /);
      expect(e.processed_at).not.toBeNull();
    }
  });

  it("answers 200 'ignored' for an imp_uid Iamport does not know", async () => {
    const r = await h.http.post("/iamport-webhook", { imp_uid: "imp_999999999999", merchant_uid: "nope", status: "paid" });
    expect(r.status).toBe(200);
    expect(r.data.status).toBe("ignored");
    expect((await events("imp_999999999999"))[0].outcome).toMatch(/^ignored: /);
  });

  it.each([
    ["no imp_uid", { merchant_uid: "m_1", status: "paid" }],
    ["an empty body", {}],
    ["imp_uid as a number", { imp_uid: 123456, merchant_uid: "m_1", status: "paid" }],
    ["imp_uid as an array", { imp_uid: ["imp_1", "imp_2"], status: "paid" }],
    ["imp_uid as an object", { imp_uid: { $ne: null } }],
    ["merchant_uid as a number", { imp_uid: "imp_123", merchant_uid: 5 }],
    ["status as a boolean", { imp_uid: "imp_123", status: true }],
    ["an over-long status", { imp_uid: "imp_123", status: "p".repeat(41) }],
    ["imp_uid with spaces", { imp_uid: "imp 123" }],
    ["an over-long imp_uid", { imp_uid: "i".repeat(81) }],
    ["a JSON array", [{ imp_uid: "imp_1" }]],
  ])("answers 400 for %s and records nothing", async (_what, body) => {
    const before = await eventCount();
    const r = await h.http.post("/iamport-webhook", body);
    expect(r.status).toBe(400);
    expect(r.data).toMatchObject({ status: "failed", code: "BAD_USER_INPUT", message: expect.any(String) });
    expect(await eventCount()).toBe(before);
  });

  it("answers 400 for invalid JSON and for a form with a repeated imp_uid", async () => {
    const before = await eventCount();
    const bad = await h.http.post("/iamport-webhook", '{"imp_uid": "imp_1",', { headers: { "content-type": "application/json" } });
    expect(bad.status).toBe(400);
    expect(bad.data).toMatchObject({ status: "failed", code: "BAD_USER_INPUT" });
    const twice = await h.http.post("/iamport-webhook", "imp_uid=imp_1&imp_uid=imp_2", FORM);
    expect(twice.status).toBe(400);
    expect(await eventCount()).toBe(before);
  });

  it("answers 400 for a status holding a NUL byte or a lone surrogate (it could never be stored), on both routes", async () => {
    const before = await eventCount();
    for (const path of ["/iamport-webhook", "/iamport-callback/schedule"]) {
      for (const [type, body] of [
        ["application/json", '{"imp_uid": "imps_nul_1", "merchant_uid": "order_x", "status": "paid\\u0000"}'],
        ["application/json", '{"imp_uid": "imps_sur_1", "status": "\\ud800"}'],
        ["application/x-www-form-urlencoded", "imp_uid=imps_nul_2&status=%00"],
      ]) {
        const r = await h.http.post(path, body, { headers: { "content-type": type }, transformRequest: [(d: unknown) => d] });
        expect({ path, body, status: r.status }).toEqual({ path, body, status: 400 });
        expect(r.data.field).toBe("status");
      }
    }
    expect(await eventCount()).toBe(before);
  });

  it("answers 413 for a body over the limit", async () => {
    const r = await h.http.post("/iamport-webhook", { imp_uid: "imp_1", pad: "x".repeat(1024 * 1024) });
    expect(r.status).toBe(413);
  });

  it("answers 503 when Iamport cannot be asked, keeps the event unprocessed, and a redelivery settles it", async () => {
    const merchantUid = await prepare(4000);
    const impUid = await paidSilently(merchantUid, 4000);
    await h.emu.post("/__emulator/faults", { route: "GET /payments/{imp_uid}", mode: "http500", times: 1 });
    const r = await h.http.post("/iamport-webhook", { imp_uid: impUid, merchant_uid: merchantUid, status: "paid" });
    expect(r.status).toBe(503);
    expect(await status(merchantUid)).toBe("PENDING");
    const [ev] = await events(impUid);
    expect(ev.processed_at).toBeNull();
    expect(ev.outcome).toMatch(/^error: UPSTREAM_UNAVAILABLE/);

    const again = await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: impUid });
    expect(again.data.webhooks.delivered).toBe(1);
    expect(await status(merchantUid)).toBe("PAID");
    expect((await events(impUid)).map((e) => e.outcome)).toEqual([ev.outcome, "PAID"]);
  });
});

describe("refunds made in Iamport's console", () => {
  it("a cancelled notice for a paid order records the refund: partial stays PAID, full is CANCELLED", async () => {
    const customerUid = await registerCard(h, uid("console"));
    const { chargeAgain } = await h.client.request<{ chargeAgain: { merchantUid: string; impUid: string; status: string } }>(
      `mutation C($input: ChargeAgainInput!) { chargeAgain(input: $input) { merchantUid impUid status } }`,
      { input: { customerUid, amount: 10_000, name: "Console refund" } },
    );
    expect(chargeAgain.status).toBe("PAID");
    const token = await h.iamportToken();
    const cancel = (amount?: number) =>
      h.emu.post("/payments/cancel", { imp_uid: chargeAgain.impUid, amount, reason: "console" }, { headers: { Authorization: token } });

    await cancel(2500);
    const partial = await h.http.post("/iamport-webhook", { imp_uid: chargeAgain.impUid, merchant_uid: chargeAgain.merchantUid, status: "paid" });
    expect(partial.data.outcome).toBe("PAID");
    const [afterPartial] = await h.sql<{ status: string; cancelled_amount: number }>(
      `select status, cancelled_amount from payments where merchant_uid = ?`,
      [chargeAgain.merchantUid],
    );
    expect(afterPartial).toEqual({ status: "PAID", cancelled_amount: 2500 });

    await cancel();
    const full = await h.http.post("/iamport-webhook", new URLSearchParams({ imp_uid: chargeAgain.impUid, merchant_uid: chargeAgain.merchantUid, status: "cancelled" }).toString(), FORM);
    expect(full.data.outcome).toBe("CANCELLED");
    const [afterFull] = await h.sql<{ status: string; cancelled_amount: number; cancelled_at: Date | null }>(
      `select status, cancelled_amount, cancelled_at from payments where merchant_uid = ?`,
      [chargeAgain.merchantUid],
    );
    expect(afterFull).toMatchObject({ status: "CANCELLED", cancelled_amount: 10_000 });
    expect(afterFull.cancelled_at).not.toBeNull();
  });
});

describe("refunds made at Iamport that send a cancellation notice (enable_webhook, as the console does)", () => {
  /**
   * Polls until `fn` returns a value (the emulator sends webhooks in the background after answering). The limit
   * is in time, not in polls: on a busy machine each poll takes longer, and a count of polls runs out early.
   */
  async function eventually<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
    for (const until = Date.now() + timeoutMs; ; ) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  const processedCancelNotice = (impUid: string, cancellationId: string) =>
    eventually(async () => {
      const ev = await events(impUid);
      return ev.find((e) => (e.body as { cancellation_id?: string }).cancellation_id === cancellationId && e.processed_at !== null);
    }, `the notice of cancellation ${cancellationId}`);
  const row = async (merchantUid: string) =>
    (
      await h.sql<{ status: string; cancelled_amount: number; cancelled_at: number | null }>(
        `select status, cancelled_amount, extract(epoch from cancelled_at)::int as cancelled_at from payments where merchant_uid = ?`,
        [merchantUid],
      )
    )[0];

  it("records a partial then a full refund once each, with the time of the latest cancellation", async () => {
    const customerUid = await registerCard(h, uid("console"));
    const { chargeAgain } = await h.client.request<{ chargeAgain: { merchantUid: string; impUid: string; status: string } }>(
      `mutation C($input: ChargeAgainInput!) { chargeAgain(input: $input) { merchantUid impUid status } }`,
      { input: { customerUid, amount: 10_000, name: "Console refund" } },
    );
    expect(chargeAgain.status).toBe("PAID");
    const { impUid, merchantUid } = chargeAgain;
    const token = await h.iamportToken();
    const cancel = async (amount?: number) => {
      const r = await h.emu.post("/payments/cancel", { imp_uid: impUid, amount, reason: "console", enable_webhook: true }, { headers: { Authorization: token } });
      expect(r.data.code).toBe(0);
      return r.data.response as { cancel_history: { cancellation_id: string; cancelled_at: number }[] };
    };

    const partial = await cancel(2500);
    const first = partial.cancel_history[0];
    const ev1 = await processedCancelNotice(impUid, first.cancellation_id);
    // The notice says "cancelled"; Iamport, asked again, says the payment is still paid with 2500 cancelled.
    expect(ev1).toMatchObject({ claimed_status: "cancelled", outcome: "PAID" });
    expect(await row(merchantUid)).toEqual({ status: "PAID", cancelled_amount: 2500, cancelled_at: first.cancelled_at });

    // The same notice delivered again records nothing twice.
    for (let i = 0; i < 3; i++) {
      const again = await h.http.post("/iamport-webhook", { imp_uid: impUid, merchant_uid: merchantUid, status: "cancelled", cancellation_id: first.cancellation_id });
      expect(again.data.outcome).toBe("PAID");
    }
    expect(await row(merchantUid)).toEqual({ status: "PAID", cancelled_amount: 2500, cancelled_at: first.cancelled_at });

    await h.advance(600);
    const full = await cancel();
    const second = full.cancel_history[1];
    expect(second.cancelled_at - first.cancelled_at).toBeGreaterThanOrEqual(600);
    const ev2 = await processedCancelNotice(impUid, second.cancellation_id);
    expect(ev2).toMatchObject({ claimed_status: "cancelled", outcome: "CANCELLED" });
    expect(await row(merchantUid)).toEqual({ status: "CANCELLED", cancelled_amount: 10_000, cancelled_at: second.cancelled_at });
  });
});

describe("duplicate and concurrent deliveries", () => {
  it("records every delivery and settles the order once", async () => {
    const merchantUid = await prepare(8000);
    const impUid = await paidSilently(merchantUid, 8000);
    const r = await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: impUid, times: 8, concurrency: 8 });
    expect(r.data.webhooks).toMatchObject({ delivered: 8, failed: 0 });
    expect(await status(merchantUid)).toBe("PAID");
    const ev = await events(impUid);
    expect(ev).toHaveLength(8);
    expect(ev.every((e) => e.outcome === "PAID" && e.processed_at !== null)).toBe(true);
    const rows = await h.sql(`select 1 from payments where merchant_uid = ? or imp_uid = ?`, [merchantUid, impUid]);
    expect(rows).toHaveLength(1);
  });

  it("a scheduled renewal's webhook delivered many times at once schedules the next period once", async () => {
    const customerUid = await registerCard(h, uid("dup"));
    const startAt = new Date(Date.now() + 3600_000).toISOString();
    const started = await h.client.request<{ startSubscription: { id: string } }>(
      `mutation S($input: StartSubscriptionInput!) { startSubscription(input: $input) { id } }`,
      { input: { customerUid, name: "Dup plan", amount: 9900, interval: "MONTH", startAt } },
    );
    const subscriptionId = started.startSubscription.id;
    // The first charge runs at Iamport, its webhook is lost...
    await h.emu.post("/__emulator/faults", { mode: "drop_webhook", times: 1 });
    const advanced = await h.advance(2 * 3600);
    const run = advanced.executed.find((e) => e.status === "paid");
    expect(run).toBeDefined();
    expect(advanced.webhooks).toMatchObject({ delivered: 0 });
    // ...then arrives ten times at once on the schedule callback (the payment's notice_url).
    const r = await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: run!.imp_uid, times: 10, concurrency: 10 });
    expect(r.data.webhooks).toMatchObject({ delivered: 10, failed: 0 });

    const list = await h.client.request<{ payments: { nodes: { status: string; merchantUid: string }[] } }>(
      `query L($id: ID) { payments(subscriptionId: $id, first: 50) { nodes { ${PAYMENT_FIELDS} } } }`,
      { id: subscriptionId },
    );
    const statuses = list.payments.nodes.map((p) => p.status).sort();
    expect(statuses).toEqual(["PAID", "SCHEDULED"]);
    const ev = await events(run!.imp_uid);
    expect(ev).toHaveLength(10);
    expect(ev.every((e) => e.source === "schedule-callback" && e.outcome === "PAID")).toBe(true);
    // The merchant hears of the start, the payment and the period it paid once each, however many copies arrived together.
    const ledger = await h.client.request<{ events: { nodes: { type: string }[] } }>(
      `query($s: ID) { events(subscriptionId: $s, first: 50) { nodes { type } } }`,
      { s: subscriptionId },
    );
    const types = ledger.events.nodes.map((e) => e.type);
    expect([...types].sort()).toEqual(["payment.paid", "subscription.renewed", "subscription.started"]);
    // Iamport holds exactly one schedule for the next period.
    const token = await h.iamportToken();
    const next = list.payments.nodes.find((p) => p.status === "SCHEDULED")!;
    const s = await h.emu.get(`/subscribe/payments/schedule/${next.merchantUid}`, { headers: { Authorization: token } });
    expect(s.data.response.schedule_status).toBe("scheduled");
  });
});

/**
 * Events that arrive together (a burst of deliveries, sent side by side):
 * each one is recorded and processed as its own, with its own outcome, and
 * an event the database refuses keeps no other out.
 */
describe("events received together", () => {
  /** Posts these webhooks to the server all at once; its answers, in order. */
  const burst = (impUids: string[]) =>
    Promise.all(impUids.map((imp_uid) => h.http.post("/iamport-webhook", { imp_uid, status: "paid" }).then((r) => ({ status: r.status, data: r.data }))));
  /** A checkout at the emulator whose own webhook is lost, so the test's deliveries are the only ones. */
  async function checkoutSilently(merchantUid: string, amount: number): Promise<string> {
    await h.emu.post("/__emulator/faults", { mode: "drop_webhook", times: 1 });
    return (await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount })).data.imp_uid as string;
  }

  it("are each recorded and processed as their own", async () => {
    const paidOrder = await prepare(4000);
    const paid = await paidSilently(paidOrder, 4000);
    const blockedOrder = await prepare(5000);
    const blocked = await checkoutSilently(blockedOrder, 50);
    const stranger = await checkoutSilently(uid("stranger"), 1000);
    const unknown = `imp_${Date.now()}`;
    // Each event's own outcome tells a mix-up of ids apart: the answers and the rows name their imp_uids.
    const impUids = [paid, blocked, stranger, unknown];
    const answers = await burst(impUids);
    expect(answers.map((a) => [a.status, a.data.status])).toEqual([
      [200, "ok"],
      [200, "ok"],
      [200, "ignored"],
      [200, "ignored"],
    ]);
    expect([answers[0].data.outcome, answers[1].data.outcome]).toEqual(["PAID", "FAILED"]);
    const recorded = await Promise.all(impUids.map(events));
    expect(recorded.map((ev) => ev.length)).toEqual([1, 1, 1, 1]);
    expect([recorded[0][0].outcome, recorded[1][0].outcome]).toEqual(["PAID", "FAILED"]);
    expect(recorded[2][0].outcome).toMatch(/^ignored: /);
    expect(recorded[3][0].outcome).toMatch(/^ignored: /);
    for (const ev of recorded) expect(ev[0].processed_at).not.toBeNull();
    expect([await status(paidOrder), await status(blockedOrder)]).toEqual(["PAID", "FAILED"]);
  });

  /** Runs `fn` with a trigger that fails the insert of `impUid` with SQLSTATE `errcode`. */
  async function refusing<T>(impUid: string, errcode: string, fn: () => Promise<T>): Promise<T> {
    await h.sql(`create function refuse_event() returns trigger language plpgsql as $$
      begin if new.imp_uid = '${impUid}' then raise exception 'refused by test trigger' using errcode = '${errcode}'; end if; return new; end $$`);
    await h.sql(`create trigger refuse_event before insert on webhook_events for each row execute function refuse_event()`);
    try {
      return await fn();
    } finally {
      await h.sql(`drop trigger refuse_event on webhook_events`);
      await h.sql(`drop function refuse_event()`);
    }
  }

  it("keep the others when the database refuses one event's row", async () => {
    const orders = [await prepare(2000), await prepare(2000)];
    const good = [await paidSilently(orders[0], 2000), await paidSilently(orders[1], 2000)];
    const bad = `imp_refused_${Date.now()}`;
    // A row the database refuses (P0001, as a trigger raises; a constraint would be class 23).
    const answers = await refusing(bad, "P0001", () => burst([good[0], bad, good[1]]));
    expect(answers.map((a) => (a.status >= 500 ? "5xx" : a.status))).toEqual([200, "5xx", 200]);
    expect([answers[0].data.outcome, answers[2].data.outcome]).toEqual(["PAID", "PAID"]);
    expect(JSON.stringify(answers[1].data)).not.toMatch(/refused by test trigger/);
    expect(await events(bad)).toEqual([]);
    for (const g of good) expect((await events(g)).map((e) => e.outcome)).toEqual(["PAID"]);
    expect([await status(orders[0]), await status(orders[1])]).toEqual(["PAID", "PAID"]);
  });

  it("answer 5xx for an event the database could not record for a passing reason, record none twice, and settle on redelivery", async () => {
    const order = await prepare(2000);
    const good = await paidSilently(order, 2000);
    const bad = `imp_conflict_${Date.now()}`;
    // A serialization failure (40001): a retry can help.
    const answers = await refusing(bad, "40001", () => burst([good, bad]));
    expect(answers[1].status).toBeGreaterThanOrEqual(500);
    expect(await events(bad)).toEqual([]);
    // The other event is recorded once if it was answered 200, and not at all if it was answered 5xx.
    const goodEvents = await events(good);
    if (answers[0].status === 200) expect(goodEvents.map((e) => e.outcome)).toEqual(["PAID"]);
    else expect([answers[0].status >= 500, goodEvents]).toEqual([true, []]);
    // Iamport's next deliveries record and settle them.
    const again = await burst([good, bad]);
    expect(again.map((a) => [a.status, a.data.status])).toEqual([
      [200, "ok"],
      [200, "ignored"],
    ]);
    expect(await status(order)).toBe("PAID");
    expect((await events(good)).filter((e) => e.outcome === "PAID")).toHaveLength(goodEvents.length + 1);
    expect(await events(bad)).toHaveLength(1);
  });
});
