import { Harness, PAYMENT_FIELDS, registerCard, startHarness, TEST_CARDS, uid } from "../support/harness";

/**
 * schedulePayments / unschedulePayments against Iamport's scheduler (the
 * emulator), which runs schedules when its clock is advanced and then calls
 * the schedule callback (POST /iamport-callback/schedule).
 */

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const SCHEDULE = `mutation S($input: SchedulePaymentsInput!) { schedulePayments(input: $input) { ${PAYMENT_FIELDS} } }`;
const UNSCHEDULE = `mutation U($customerUid: String!, $merchantUids: [String!]) { unschedulePayments(customerUid: $customerUid, merchantUids: $merchantUids) { merchantUid status } }`;

type Pay = { merchantUid: string; status: string; impUid: string | null; amount: number; paidAmount: number | null; scheduledAt: string | null; failReason: string | null; customerUid: string };

/** The emulator's clock, which advances during this file; schedules are made relative to it. */
async function emulatorNow(): Promise<number> {
  return (await h.emu.get("/__emulator/clock")).data.now as number;
}

/** A time `seconds` after both the server's and the emulator's now (the emulator's runs ahead once advanced). */
async function later(seconds: number): Promise<Date> {
  const base = Math.max(Date.now(), (await emulatorNow()) * 1000);
  return new Date(Math.ceil((base + seconds * 1000) / 1000) * 1000);
}

async function schedule(customerUid: string, items: Record<string, unknown>[]): Promise<Pay[]> {
  return (await h.client.request<{ schedulePayments: Pay[] }>(SCHEDULE, { input: { customerUid, schedules: items } })).schedulePayments;
}

async function atIamport(merchantUid: string) {
  const token = await h.iamportToken();
  return h.emu.get(`/subscribe/payments/schedule/${merchantUid}`, { headers: { Authorization: token } });
}

async function rows(customerUid: string) {
  return h.sql<{ merchant_uid: string; status: string; imp_uid: string | null; kind: string }>(
    `select merchant_uid, status, imp_uid, kind from payments where customer_uid = ? order by id`,
    [customerUid],
  );
}

/** Advances the emulator's clock to `at` (plus a second) and returns what ran. */
async function runUntil(at: Date) {
  const now = await emulatorNow();
  return h.advance(Math.max(0, Math.ceil(at.getTime() / 1000) - now + 1));
}

describe("schedulePayments", () => {
  it("registers future charges with Iamport; the clock runs them and the callback marks them PAID one by one", async () => {
    const customerUid = await registerCard(h, uid("sch"));
    const first = await later(3600);
    const second = await later(7200);
    const [a, b] = await schedule(customerUid, [
      { scheduleAt: first.toISOString(), amount: 9900, name: "Month 1", merchantUid: uid("m1") },
      { scheduleAt: second.toISOString(), amount: 9900, name: "Month 2" },
    ]);
    expect(a).toMatchObject({ customerUid, status: "SCHEDULED", amount: 9900, impUid: null, scheduledAt: first.toISOString() });
    expect(b).toMatchObject({ status: "SCHEDULED", scheduledAt: second.toISOString() });
    expect(b.merchantUid).toMatch(/^sch_/);

    const atA = await atIamport(a.merchantUid);
    expect(atA.data.response).toMatchObject({ customer_uid: customerUid, schedule_status: "scheduled", schedule_at: first.getTime() / 1000, amount: 9900 });
    expect((await rows(customerUid)).map((r) => [r.status, r.kind])).toEqual([
      ["SCHEDULED", "SCHEDULE"],
      ["SCHEDULED", "SCHEDULE"],
    ]);

    const run1 = await runUntil(first);
    const ranA = run1.executed.find((e) => e.merchant_uid === a.merchantUid);
    expect(ranA).toMatchObject({ status: "paid" });
    expect(run1.executed.find((e) => e.merchant_uid === b.merchantUid)).toBeUndefined();
    expect(run1.webhooks.failed).toBe(0);
    const after1 = await rows(customerUid);
    expect(after1[0]).toMatchObject({ status: "PAID", imp_uid: ranA!.imp_uid });
    expect(after1[1].status).toBe("SCHEDULED");
    const ev = await h.sql<{ source: string; outcome: string }>(`select source, outcome from webhook_events where imp_uid = ?`, [ranA!.imp_uid]);
    expect(ev).toEqual([{ source: "schedule-callback", outcome: "PAID" }]);

    await runUntil(second);
    const { payment } = await h.client.request<{ payment: Pay }>(`query P($m: String) { payment(merchantUid: $m) { ${PAYMENT_FIELDS} } }`, { m: b.merchantUid });
    expect(payment).toMatchObject({ status: "PAID", paidAmount: 9900 });
    expect(payment.impUid).toEqual(expect.any(String));
    expect((await atIamport(b.merchantUid)).data.response).toMatchObject({ schedule_status: "executed", payment_status: "paid" });
  });

  it("a declined scheduled charge is FAILED with the reason", async () => {
    const customerUid = await registerCard(h, uid("schdecl"), TEST_CARDS.declined);
    const at = await later(600);
    const [p] = await schedule(customerUid, [{ scheduleAt: at.toISOString(), amount: 5000, name: "Will decline" }]);
    await runUntil(at);
    const [r] = await h.sql<{ status: string; fail_reason: string | null; paid_amount: number | null }>(
      `select status, fail_reason, paid_amount from payments where merchant_uid = ?`,
      [p.merchantUid],
    );
    expect(r.status).toBe("FAILED");
    expect(r.fail_reason).toEqual(expect.any(String));
    expect(r.paid_amount).toBeNull();
  });

  it.each([
    ["the first", 0],
    ["the second", 1],
  ])("refuses a past scheduleAt in %s item with BAD_USER_INPUT schedules[i].scheduleAt, and registers nothing", async (_which, i) => {
    const customerUid = await registerCard(h, uid("past"));
    const items = [
      { scheduleAt: (await later(3600)).toISOString(), amount: 1000, name: "ok", merchantUid: uid("ok") },
      { scheduleAt: (await later(7200)).toISOString(), amount: 1000, name: "ok", merchantUid: uid("ok") },
    ];
    items[i].scheduleAt = new Date(Date.now() - 60_000).toISOString();
    const r = await h.gql(SCHEDULE, { input: { customerUid, schedules: items } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: `schedules[${i}].scheduleAt` });
    expect(await rows(customerUid)).toHaveLength(0);
    for (const it of items) expect((await atIamport(it.merchantUid)).status).toBe(404);
  });

  it("refuses a merchantUid repeated in the request, naming the second one", async () => {
    const customerUid = await registerCard(h, uid("rep"));
    const merchantUid = uid("same");
    const at = (await later(3600)).toISOString();
    const r = await h.gql(SCHEDULE, {
      input: {
        customerUid,
        schedules: [
          { scheduleAt: at, amount: 1000, name: "a", merchantUid },
          { scheduleAt: at, amount: 2000, name: "b", merchantUid },
        ],
      },
    });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "schedules[1].merchantUid" });
    expect(await rows(customerUid)).toHaveLength(0);
    expect((await atIamport(merchantUid)).status).toBe(404);
  });

  it("refuses a merchantUid that already exists with CONFLICT and registers nothing new", async () => {
    const customerUid = await registerCard(h, uid("conf"));
    const merchantUid = uid("taken");
    const at = await later(3600);
    await schedule(customerUid, [{ scheduleAt: at.toISOString(), amount: 1000, name: "first", merchantUid }]);
    const other = uid("other");
    const r = await h.gql(SCHEDULE, {
      input: {
        customerUid,
        schedules: [
          { scheduleAt: at.toISOString(), amount: 1000, name: "new", merchantUid: other },
          { scheduleAt: at.toISOString(), amount: 3000, name: "dup", merchantUid },
        ],
      },
    });
    expect(r.errors?.[0].extensions?.code).toBe("CONFLICT");
    expect((await rows(customerUid)).map((x) => x.merchant_uid)).toEqual([merchantUid]);
    expect((await atIamport(other)).status).toBe(404);
    expect((await atIamport(merchantUid)).data.response.amount).toBe(1000);
  });

  it.each([
    [{ amount: 0 }, "schedules[0].amount"],
    [{ amount: 1.5 }, null],
    [{ name: " " }, "schedules[0].name"],
    [{ merchantUid: "m".repeat(41) }, "schedules[0].merchantUid"],
    [{ merchantUid: "with space" }, "schedules[0].merchantUid"],
  ])("answers BAD_USER_INPUT for an item %p", async (patch, field) => {
    const customerUid = await registerCard(h, uid("badi"));
    const r = await h.gql(SCHEDULE, {
      input: { customerUid, schedules: [{ scheduleAt: (await later(3600)).toISOString(), amount: 1000, name: "x", ...patch }] },
    });
    // A non-integer amount is refused by GraphQL itself (Int), before the service.
    expect(r.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
    if (field) expect(r.errors?.[0].extensions?.field).toBe(field);
    expect(await rows(customerUid)).toHaveLength(0);
  });

  it("answers BAD_USER_INPUT for an empty list and NOT_FOUND for a customer without a card", async () => {
    const customerUid = await registerCard(h, uid("empty"));
    const empty = await h.gql(SCHEDULE, { input: { customerUid, schedules: [] } });
    expect(empty.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "schedules" });
    const nobody = await h.gql(SCHEDULE, {
      input: { customerUid: uid("nocard"), schedules: [{ scheduleAt: (await later(3600)).toISOString(), amount: 1000, name: "x" }] },
    });
    expect(nobody.errors?.[0].extensions?.code).toBe("NOT_FOUND");
  });
});

describe("schedulePayments when Iamport fails", () => {
  it("retries once with the same merchant_uids after a 500 (nothing was registered) and keeps the buyer data", async () => {
    const customerUid = await registerCard(h, uid("sch500"));
    const merchantUid = uid("retry");
    await h.emu.post("/__emulator/faults", { route: "POST /subscribe/payments/schedule", mode: "http500", times: 1 });
    const [p] = await schedule(customerUid, [
      { scheduleAt: (await later(3600)).toISOString(), amount: 4400, name: "After a 500", merchantUid, buyerName: "Kim", buyerEmail: "kim@example.com" },
    ]);
    expect(p.status).toBe("SCHEDULED");
    expect((await atIamport(merchantUid)).data.response).toMatchObject({
      schedule_status: "scheduled",
      amount: 4400,
      currency: "KRW",
      buyer_name: "Kim",
      buyer_email: "kim@example.com",
    });
  });

  it("answers OUTCOME_UNKNOWN naming the merchantUids when Iamport keeps failing; the rows stay PENDING, and the same request again registers them", async () => {
    const customerUid = await registerCard(h, uid("schdown"));
    const merchantUid = uid("down");
    await h.emu.post("/__emulator/faults", { route: "POST /subscribe/payments/schedule", mode: "http500", times: 2 });
    const input = { customerUid, schedules: [{ scheduleAt: (await later(3600)).toISOString(), amount: 1000, name: "down", merchantUid }] };
    const r = await h.gql(SCHEDULE, { input });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUid, merchantUids: [merchantUid] });
    expect((await rows(customerUid)).map((x) => x.status)).toEqual(["PENDING"]);
    expect((await atIamport(merchantUid)).status).toBe(404);

    const again = await h.gql<{ schedulePayments: { merchantUid: string; status: string }[] }>(SCHEDULE, { input });
    expect(again.data?.schedulePayments).toMatchObject([{ merchantUid, status: "SCHEDULED" }]);
    expect((await atIamport(merchantUid)).data.response.schedule_status).toBe("scheduled");
    // Repeated once more, it answers the same rows and registers nothing new.
    const third = await h.gql<{ schedulePayments: { merchantUid: string; status: string }[] }>(SCHEDULE, { input });
    expect(third.data?.schedulePayments).toMatchObject([{ merchantUid, status: "SCHEDULED" }]);
    expect((await rows(customerUid)).map((x) => x.status)).toEqual(["SCHEDULED"]);
  });
});

describe("unschedulePayments", () => {
  it("revokes the listed schedules at Iamport and marks them REVOKED; they never run", async () => {
    const customerUid = await registerCard(h, uid("uns"));
    const at = await later(3600);
    const [a, b] = await schedule(customerUid, [
      { scheduleAt: at.toISOString(), amount: 1000, name: "a" },
      { scheduleAt: at.toISOString(), amount: 2000, name: "b" },
    ]);
    const { unschedulePayments } = await h.client.request<{ unschedulePayments: { merchantUid: string; status: string }[] }>(UNSCHEDULE, {
      customerUid,
      merchantUids: [a.merchantUid],
    });
    expect(unschedulePayments).toEqual([{ merchantUid: a.merchantUid, status: "REVOKED" }]);
    expect((await atIamport(a.merchantUid)).data.response.schedule_status).toBe("revoked");
    expect((await atIamport(b.merchantUid)).data.response.schedule_status).toBe("scheduled");
    expect((await rows(customerUid)).map((r) => r.status)).toEqual(["REVOKED", "SCHEDULED"]);

    const ran = await runUntil(at);
    expect(ran.executed.map((e) => e.merchant_uid)).not.toContain(a.merchantUid);
    expect((await rows(customerUid)).map((r) => r.status)).toEqual(["REVOKED", "PAID"]);
  });

  it("revokes all of a customer's schedules when merchantUids is omitted; then there is nothing to revoke (NOT_FOUND)", async () => {
    const customerUid = await registerCard(h, uid("unsall"));
    const [a, b] = await schedule(customerUid, [
      { scheduleAt: (await later(3600)).toISOString(), amount: 1000, name: "a" },
      { scheduleAt: (await later(7200)).toISOString(), amount: 1000, name: "b" },
    ]);
    const { unschedulePayments } = await h.client.request<{ unschedulePayments: { merchantUid: string; status: string }[] }>(UNSCHEDULE, { customerUid });
    expect(unschedulePayments.map((p) => p.merchantUid).sort()).toEqual([a.merchantUid, b.merchantUid].sort());
    expect(unschedulePayments.every((p) => p.status === "REVOKED")).toBe(true);
    for (const p of [a, b]) expect((await atIamport(p.merchantUid)).data.response.schedule_status).toBe("revoked");

    const again = await h.gql(UNSCHEDULE, { customerUid });
    expect(again.errors?.[0].extensions?.code).toBe("NOT_FOUND");
  });

  it("does not revoke another customer's schedule", async () => {
    const owner = await registerCard(h, uid("own"));
    const intruder = await registerCard(h, uid("intr"));
    const [p] = await schedule(owner, [{ scheduleAt: (await later(3600)).toISOString(), amount: 1000, name: "mine" }]);
    const r = await h.gql(UNSCHEDULE, { customerUid: intruder, merchantUids: [p.merchantUid] });
    expect(r.errors?.[0].extensions?.code).toBe("NOT_FOUND");
    expect((await atIamport(p.merchantUid)).data.response.schedule_status).toBe("scheduled");
    expect((await rows(owner))[0].status).toBe("SCHEDULED");
  });

  it("answers BAD_USER_INPUT for an empty merchantUids list or a bad customerUid, NOT_FOUND for an unknown customer", async () => {
    const customerUid = await registerCard(h, uid("unsbad"));
    const empty = await h.gql(UNSCHEDULE, { customerUid, merchantUids: [] });
    expect(empty.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "merchantUids" });
    const bad = await h.gql(UNSCHEDULE, { customerUid: "a b" });
    expect(bad.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "customerUid" });
    const badUid = await h.gql(UNSCHEDULE, { customerUid, merchantUids: ["ok", "not ok"] });
    expect(badUid.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "merchantUids[1]" });
    const unknown = await h.gql(UNSCHEDULE, { customerUid: uid("ghost") });
    expect(unknown.errors?.[0].extensions?.code).toBe("NOT_FOUND");
  });
});
