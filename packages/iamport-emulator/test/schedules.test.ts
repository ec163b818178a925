import http from "node:http";
import type { AddressInfo } from "node:net";
import { TEST_CARDS } from "../src";
import {
  advance,
  CARD,
  clockNow,
  closedPortUrl,
  issueKey,
  startTestEmulator,
  uid,
  WebhookReceiver,
  type Envelope,
  type TestEmulator,
} from "./helpers";

type ScheduleResult = Record<string, unknown> & {
  customer_uid: string;
  merchant_uid: string;
  imp_uid: string | null;
  schedule_at: number;
  executed_at: number;
  revoked_at: number;
  schedule_status: string;
  payment_status: string | null;
  fail_reason: string | null;
};

interface SchedulePage {
  total: number;
  previous: number;
  next: number;
  list: ScheduleResult[];
}

describe("emulator: schedules and the clock", () => {
  let t: TestEmulator;
  let hooks: WebhookReceiver;
  beforeAll(async () => {
    hooks = await new WebhookReceiver().start();
    t = await startTestEmulator({ webhookUrl: hooks.url });
  });
  afterAll(async () => {
    await t.close();
    await hooks.close();
  });
  beforeEach(async () => {
    await t.http.post("/__emulator/reset");
    t.emulator.setWebhookUrl(hooks.url);
  });

  const schedule = (customer_uid: string, schedules: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}) =>
    t.api.post<Envelope<ScheduleResult[]>>("/subscribe/payments/schedule", { customer_uid, schedules, ...extra });

  it("registers schedules, runs them when the clock passes schedule_at, and sends their webhooks", async () => {
    const cu = uid("cust");
    await issueKey(t, cu, { customer_name: "홍길동" } as never);
    const now = await clockNow(t);
    const [m1, m2] = [uid("sub"), uid("sub")];
    const r = await schedule(cu, [
      { merchant_uid: m2, schedule_at: now + 7200, amount: 2000, name: "2월" },
      { merchant_uid: m1, schedule_at: now + 3600, amount: 1000, name: "1월", custom_data: "c1" },
    ]);
    expect(r.status).toBe(200);
    expect(r.data.code).toBe(0);
    expect(r.data.response).toHaveLength(2);
    expect(r.data.response[1]).toMatchObject({
      customer_uid: cu,
      merchant_uid: m1,
      imp_uid: null,
      schedule_at: now + 3600,
      executed_at: 0,
      revoked_at: 0,
      amount: 1000,
      currency: "KRW",
      name: "1월",
      custom_data: "c1",
      schedule_status: "scheduled",
      payment_status: null,
      fail_reason: null,
    });

    // Not due yet (with a margin: real time passes too).
    const early = await advance(t, 3000);
    expect(early.executed).toEqual([]);

    // Both become due in one advance; they run in schedule_at order.
    const res = await advance(t, 4300);
    expect(res.now).toBeGreaterThanOrEqual(now + 7300);
    expect(res.executed.map((e) => e.merchant_uid)).toEqual([m1, m2]);
    expect(res.executed.every((e) => e.status === "paid" && /^imps_/.test(e.imp_uid ?? ""))).toBe(true);
    expect(res.webhooks).toEqual({ delivered: 2, failed: 0, dropped: 0 });
    // The advance answered after delivery: the webhooks are already here.
    expect(hooks.received.map((h) => h.body)).toEqual(
      expect.arrayContaining([
        { imp_uid: res.executed[0].imp_uid, merchant_uid: m1, status: "paid" },
        { imp_uid: res.executed[1].imp_uid, merchant_uid: m2, status: "paid" },
      ]),
    );

    const s1 = (await t.api.get<Envelope<ScheduleResult>>(`/subscribe/payments/schedule/${m1}`)).data.response;
    expect(s1).toMatchObject({ schedule_status: "executed", payment_status: "paid", imp_uid: res.executed[0].imp_uid });
    expect(s1.executed_at).toBe(res.now);
    // Missing buyer_* fell back to the customer's details.
    expect(s1.buyer_name).toBe("홍길동");

    const pay = (await t.api.get<Envelope<Record<string, unknown>>>(`/payments/${res.executed[0].imp_uid}`)).data.response;
    expect(pay).toMatchObject({ merchant_uid: m1, status: "paid", amount: 1000, customer_uid: cu, customer_uid_usage: "payment.scheduled", channel: "api", custom_data: "c1" });

    // Each schedule ran exactly once.
    expect((await advance(t, 86400)).executed).toEqual([]);
  });

  it("runs a declining card's schedule as failed with fail_reason, and still notifies it", async () => {
    const cu = uid("cust");
    await issueKey(t, cu, { card_number: TEST_CARDS.DECLINED_INSUFFICIENT_BALANCE });
    const now = await clockNow(t);
    const mu = uid("sub");
    await schedule(cu, [{ merchant_uid: mu, schedule_at: now + 60, amount: 1000, name: "x" }]);
    const res = await advance(t, 61);
    expect(res.executed).toEqual([{ merchant_uid: mu, imp_uid: expect.stringMatching(/^imps_/), status: "failed" }]);
    expect(res.webhooks.delivered).toBe(1);
    expect(hooks.received.at(-1)?.body).toEqual({ imp_uid: res.executed[0].imp_uid, merchant_uid: mu, status: "failed" });
    const s = (await t.api.get<Envelope<ScheduleResult>>(`/subscribe/payments/schedule/${mu}`)).data.response;
    expect(s).toMatchObject({ schedule_status: "executed", payment_status: "failed" });
    expect(s.fail_reason).toContain("잔액부족");
  });

  it("refuses an unknown customer, a duplicate or already-paid merchant_uid, and a past schedule_at", async () => {
    const now = await clockNow(t);
    const unknown = await schedule(uid("ghost"), [{ merchant_uid: uid("s"), schedule_at: now + 60, amount: 1, name: "x" }]);
    expect(unknown.status).toBe(200);
    expect(unknown.data.code).not.toBe(0);
    expect(unknown.data.message).toBe("등록된 고객정보가 없습니다.");

    const cu = uid("cust");
    await issueKey(t, cu);
    const mu = uid("s");
    expect((await schedule(cu, [{ merchant_uid: mu, schedule_at: now + 60, amount: 1000, name: "x" }])).data.code).toBe(0);
    const dup = await schedule(cu, [{ merchant_uid: mu, schedule_at: now + 120, amount: 1000, name: "x" }]);
    expect(dup.data.code).not.toBe(0);
    expect(dup.data.message).toContain(mu);

    const inRequest = uid("s");
    const dupInRequest = await schedule(cu, [
      { merchant_uid: inRequest, schedule_at: now + 60, amount: 1000, name: "x" },
      { merchant_uid: inRequest, schedule_at: now + 90, amount: 1000, name: "x" },
    ]);
    expect(dupInRequest.data.code).not.toBe(0);
    // All or nothing: the first item was not registered either.
    expect((await t.api.get(`/subscribe/payments/schedule/${inRequest}`)).status).toBe(404);

    const paidOrder = uid("order");
    await t.api.post("/subscribe/payments/again", { customer_uid: cu, merchant_uid: paidOrder, amount: 1000, name: "x" });
    const alreadyPaid = await schedule(cu, [{ merchant_uid: paidOrder, schedule_at: now + 60, amount: 1000, name: "x" }]);
    expect(alreadyPaid.data.code).not.toBe(0);

    const past = await schedule(cu, [{ merchant_uid: uid("s"), schedule_at: now - 10, amount: 1000, name: "x" }]);
    expect(past.status).toBe(400);
    expect(past.data.code).not.toBe(0);

    const millis = await schedule(cu, [{ merchant_uid: uid("s"), schedule_at: (now + 60) * 1000, amount: 1000, name: "x" }]);
    expect(millis.status).toBe(400);
    expect(millis.data.message).toContain("schedules[0].schedule_at");

    const missing = await schedule(cu, [{ merchant_uid: uid("s"), schedule_at: now + 60, name: "x" }]);
    expect(missing.status).toBe(400);
    expect(missing.data.message).toContain("schedules[0].amount");
    const none = await schedule(cu, []);
    expect(none.status).toBe(400);
  });

  it("with card data and an unknown customer_uid, issues the key first (spec)", async () => {
    const cu = uid("cust");
    const now = await clockNow(t);
    const r = await schedule(cu, [{ merchant_uid: uid("s"), schedule_at: now + 60, amount: 500, name: "x" }], CARD);
    expect(r.data.code).toBe(0);
    expect((await t.api.get(`/subscribe/customers/${cu}`)).status).toBe(200);
  });

  it("accepts a form body with qs-style nested keys (schedules[0][merchant_uid])", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const now = await clockNow(t);
    const form = new URLSearchParams();
    form.set("customer_uid", cu);
    const mus: string[] = [];
    for (let i = 0; i < 25; i++) {
      // More than qs's default arrayLimit of 20 indices.
      const mu = uid("form");
      mus.push(mu);
      form.set(`schedules[${i}][merchant_uid]`, mu);
      form.set(`schedules[${i}][schedule_at]`, String(now + 100 + i));
      form.set(`schedules[${i}][amount]`, "1500");
      form.set(`schedules[${i}][name]`, "폼");
    }
    const r = await t.api.post<Envelope<ScheduleResult[]>>("/subscribe/payments/schedule", form.toString(), {
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    });
    expect(r.data.code).toBe(0);
    expect(r.data.response.map((s) => s.merchant_uid)).toEqual(mus);
    expect(r.data.response[0]).toMatchObject({ amount: 1500, schedule_at: now + 100 });

    // Unschedule with a form array too.
    const un = await t.api.post<Envelope<ScheduleResult[]>>(
      "/subscribe/payments/unschedule",
      `customer_uid=${cu}&merchant_uid[]=${mus[0]}&merchant_uid[]=${mus[1]}`,
      { headers: { "Content-Type": "application/x-www-form-urlencoded" } },
    );
    expect(un.data.response.map((s) => s.merchant_uid).sort()).toEqual([mus[0], mus[1]].sort());
  });

  it("unschedules listed or all pending schedules; nothing to revoke is a non-zero code", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const now = await clockNow(t);
    const mus = [uid("s"), uid("s"), uid("s")];
    await schedule(cu, mus.map((merchant_uid, i) => ({ merchant_uid, schedule_at: now + 100 * (i + 1), amount: 1000, name: "x" })));

    const one = await t.api.post<Envelope<ScheduleResult[]>>("/subscribe/payments/unschedule", { customer_uid: cu, merchant_uid: [mus[0]] });
    expect(one.data.code).toBe(0);
    expect(one.data.response).toHaveLength(1);
    expect(one.data.response[0]).toMatchObject({ merchant_uid: mus[0], schedule_status: "revoked" });
    expect(one.data.response[0].revoked_at).toBeGreaterThan(0);

    const rest = await t.api.post<Envelope<ScheduleResult[]>>("/subscribe/payments/unschedule", { customer_uid: cu });
    expect(rest.data.response.map((s) => s.merchant_uid).sort()).toEqual([mus[1], mus[2]].sort());

    const nothing = await t.api.post<Envelope>("/subscribe/payments/unschedule", { customer_uid: cu });
    expect(nothing.status).toBe(200);
    expect(nothing.data.code).not.toBe(0);
    expect(nothing.data.response).toBeNull();
    expect((await t.api.post<Envelope>("/subscribe/payments/unschedule", {})).status).toBe(400);

    // Revoked schedules never run; a revoked merchant_uid may be scheduled again.
    expect((await advance(t, 1000)).executed).toEqual([]);
    const now2 = await clockNow(t);
    const again = await schedule(cu, [{ merchant_uid: mus[0], schedule_at: now2 + 10, amount: 1000, name: "x" }]);
    expect(again.data.code).toBe(0);
    expect((await advance(t, 10)).executed.map((e) => e.merchant_uid)).toEqual([mus[0]]);
  });

  it("moves a pending schedule with PUT (and refuses executed ones)", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const now = await clockNow(t);
    const mu = uid("s");
    await schedule(cu, [{ merchant_uid: mu, schedule_at: now + 100, amount: 1000, name: "x" }]);
    const moved = await t.api.put<Envelope<ScheduleResult>>(`/subscribe/payments/schedule/${mu}`, { schedule_at: now + 5000 });
    expect(moved.data.response.schedule_at).toBe(now + 5000);
    expect((await advance(t, 200)).executed).toEqual([]);
    expect((await advance(t, 5000)).executed.map((e) => e.merchant_uid)).toEqual([mu]);
    expect((await t.api.put<Envelope>(`/subscribe/payments/schedule/${mu}`, { schedule_at: now + 99999 })).status).toBe(400);
    expect((await t.api.put<Envelope>(`/subscribe/payments/schedule/${uid("none")}`, { schedule_at: now + 99999 })).status).toBe(404);
  });

  it("pages a customer's schedules newest first, filtered by from/to and schedule-status", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const now = await clockNow(t);
    const items = Array.from({ length: 45 }, (_, i) => ({ merchant_uid: `${cu}_${i}`, schedule_at: now + 1000 + i, amount: 100, name: "x" }));
    expect((await schedule(cu, items)).data.code).toBe(0);
    await t.api.post("/subscribe/payments/unschedule", { customer_uid: cu, merchant_uid: [`${cu}_0`, `${cu}_1`] });

    const page = (q: Record<string, unknown>) =>
      t.api.get<Envelope<SchedulePage>>(`/subscribe/payments/schedule/customers/${cu}`, { params: { from: now, to: now + 10_000, ...q } });

    const p1 = (await page({})).data.response;
    expect(p1.total).toBe(45);
    expect(p1.previous).toBe(0);
    expect(p1.next).toBe(2);
    expect(p1.list).toHaveLength(20);
    expect(p1.list[0].merchant_uid).toBe(`${cu}_44`);
    const p3 = (await page({ page: 3 })).data.response;
    expect(p3).toMatchObject({ total: 45, previous: 2, next: 0 });
    expect(p3.list).toHaveLength(5);
    expect(p3.list.at(-1)?.merchant_uid).toBe(`${cu}_0`);

    const revoked = (await page({ "schedule-status": "revoked" })).data.response;
    expect(revoked.total).toBe(2);
    const window = (await page({ from: now + 1010, to: now + 1020 })).data.response;
    expect(window.list.map((s) => s.merchant_uid)).toEqual(Array.from({ length: 10 }, (_, i) => `${cu}_${19 - i}`));

    expect((await t.api.get<Envelope>(`/subscribe/payments/schedule/customers/${cu}`)).status).toBe(400); // from/to required
    expect((await page({ "schedule-status": "bogus" })).status).toBe(400);
    expect((await page({ page: 0 })).status).toBe(400);
    const empty = (await t.api.get<Envelope<SchedulePage>>(`/subscribe/payments/schedule/customers/${uid("nobody")}`, { params: { from: now - 86_400, to: now } })).data;
    expect(empty).toEqual({ code: 0, message: null, response: { total: 0, previous: 0, next: 0, list: [] } });

    // The all-customers listing (GET /subscribe/payments/schedule) pages too.
    const all = await t.api.get<Envelope<SchedulePage>>("/subscribe/payments/schedule", {
      params: { schedule_from: now, schedule_to: now + 10_000, schedule_status: "scheduled", limit: 50, sorting: "scheduled" },
    });
    expect(all.data.response.total).toBe(43);
    expect(all.data.response.list[0].merchant_uid).toBe(`${cu}_2`);
  });

  it("lists schedules at most three calendar months at a time, as Iamport does: a year's scan is refused", async () => {
    // 2027-01-31 00:00 KST: three months later is 2027-05-01 00:00 KST (April has 30 days).
    const from = Date.UTC(2027, 0, 30, 15) / 1000;
    const threeMonths = Date.UTC(2027, 3, 30, 15) / 1000;
    const cu = uid("cust");
    await issueKey(t, cu);
    for (const path of [`/subscribe/payments/schedule/customers/${cu}`, `/subscribe/customers/${cu}/schedules`]) {
      expect((await t.api.get<Envelope>(path, { params: { from, to: threeMonths } })).status).toBe(200);
      const over = await t.api.get<Envelope>(path, { params: { from, to: threeMonths + 1 } });
      expect(over.status).toBe(400);
      expect(over.data).toMatchObject({ code: expect.any(Number), response: null, message: expect.stringContaining("3개월") });
      expect(over.data.code).not.toBe(0);
      expect((await t.api.get<Envelope>(path, { params: { from, to: from + 365 * 86_400 } })).status).toBe(400);
    }
    const all = (params: Record<string, number>) => t.api.get<Envelope>("/subscribe/payments/schedule", { params });
    expect((await all({ schedule_from: from, schedule_to: threeMonths })).status).toBe(200);
    expect((await all({ schedule_from: from, schedule_to: from + 365 * 86_400 })).status).toBe(400);
  });

  it("keeps schedules of a deleted billing key; they fail when run", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const now = await clockNow(t);
    const mu = uid("s");
    await schedule(cu, [{ merchant_uid: mu, schedule_at: now + 60, amount: 1000, name: "x" }]);
    await t.api.delete(`/subscribe/customers/${cu}`);
    const res = await advance(t, 60);
    expect(res.executed).toEqual([{ merchant_uid: mu, imp_uid: expect.any(String), status: "failed" }]);
    const p = (await t.api.get<Envelope<{ fail_reason: string }>>(`/payments/${res.executed[0].imp_uid}`)).data.response;
    expect(p.fail_reason).toContain("등록된 고객정보가 없습니다.");
  });

  it("fails a schedule whose order was paid meanwhile, without charging twice", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const now = await clockNow(t);
    const mu = uid("s");
    await schedule(cu, [{ merchant_uid: mu, schedule_at: now + 60, amount: 1000, name: "x" }]);
    await t.api.post("/subscribe/payments/again", { customer_uid: cu, merchant_uid: mu, amount: 1000, name: "x" });
    const res = await advance(t, 60);
    expect(res.executed).toEqual([{ merchant_uid: mu, imp_uid: null, status: "failed" }]);
    expect((await t.api.get<Envelope<{ status: string }>>(`/payments/find/${mu}`)).data.response.status).toBe("paid");
  });

  it("sends schedule webhooks as a form when configured", async () => {
    const formHooks = await new WebhookReceiver().start();
    const f = await startTestEmulator({ webhookUrl: formHooks.url, webhookContentType: "form" });
    try {
      const cu = uid("cust");
      await issueKey(f, cu);
      const now = await clockNow(f);
      const mu = uid("s");
      await f.api.post("/subscribe/payments/schedule", { customer_uid: cu, schedules: [{ merchant_uid: mu, schedule_at: now + 5, amount: 700, name: "x" }] });
      const res = await advance(f, 5);
      expect(res.webhooks.delivered).toBe(1);
      expect(formHooks.received).toHaveLength(1);
      expect(formHooks.received[0].contentType).toBe("application/x-www-form-urlencoded");
      expect(formHooks.received[0].raw).toContain(`merchant_uid=${mu}`);
      expect(formHooks.received[0].body).toEqual({ imp_uid: res.executed[0].imp_uid, merchant_uid: mu, status: "paid" });
    } finally {
      await f.close();
      await formHooks.close();
    }
  });

  it("retries webhooks on 5xx when asked, and reports failures after the last try", async () => {
    const flaky = await new WebhookReceiver().start();
    flaky.respond = (n) => (n <= 2 ? 503 : 200);
    const r = await startTestEmulator({ webhookUrl: flaky.url, webhookRetries: 3, webhookRetryIntervalMs: 20 });
    try {
      const cu = uid("cust");
      await issueKey(r, cu);
      const now = await clockNow(r);
      await r.api.post("/subscribe/payments/schedule", { customer_uid: cu, schedules: [{ merchant_uid: uid("s"), schedule_at: now + 5, amount: 700, name: "x" }] });
      const res = await advance(r, 5);
      expect(res.webhooks).toEqual({ delivered: 1, failed: 0, dropped: 0 });
      expect(flaky.received).toHaveLength(3); // 503, 503, 200
      const log = (await r.http.get<{ webhooks: Array<{ attempts: number; outcome: string }> }>("/__emulator/webhooks")).data.webhooks;
      expect(log.at(-1)).toMatchObject({ attempts: 3, outcome: "delivered" });

      // Always failing: 1 try + 3 retries, then failed. 4xx is not retried.
      flaky.respond = () => 500;
      flaky.received.length = 0;
      await r.api.post("/subscribe/payments/schedule", { customer_uid: cu, schedules: [{ merchant_uid: uid("s"), schedule_at: now + 10, amount: 700, name: "x" }] });
      expect((await advance(r, 5)).webhooks).toEqual({ delivered: 0, failed: 1, dropped: 0 });
      expect(flaky.received).toHaveLength(4);

      flaky.respond = () => 400;
      flaky.received.length = 0;
      await r.api.post("/subscribe/payments/schedule", { customer_uid: cu, schedules: [{ merchant_uid: uid("s"), schedule_at: now + 15, amount: 700, name: "x" }] });
      expect((await advance(r, 5)).webhooks).toEqual({ delivered: 0, failed: 1, dropped: 0 });
      expect(flaky.received).toHaveLength(1);
    } finally {
      await r.close();
      await flaky.close();
    }
  });

  it("sends webhooks once by default, and counts an unreachable receiver as failed", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    t.emulator.setWebhookUrl(await closedPortUrl());
    const now = await clockNow(t);
    await schedule(cu, [{ merchant_uid: uid("s"), schedule_at: now + 5, amount: 100, name: "x" }]);
    const res = await advance(t, 5);
    expect(res.webhooks).toEqual({ delivered: 0, failed: 1, dropped: 0 });
    const log = (await t.http.get<{ webhooks: Array<{ attempts: number; outcome: string; error: string }> }>("/__emulator/webhooks")).data.webhooks;
    expect(log.at(-1)).toMatchObject({ attempts: 1, outcome: "failed" });

    // No URL at all: nothing is sent and nothing is counted.
    t.emulator.setWebhookUrl(undefined);
    await schedule(cu, [{ merchant_uid: uid("s"), schedule_at: now + 20, amount: 100, name: "x" }]);
    const silent = await advance(t, 20);
    expect(silent.executed).toHaveLength(1);
    expect(silent.webhooks).toEqual({ delivered: 0, failed: 0, dropped: 0 });
  });

  it("delivers one advance's webhooks concurrently, at most webhookConcurrency at a time", async () => {
    const slow = await new WebhookReceiver().start();
    // Each answer waits until three are open at once (or the last one has arrived): with a limit of 3 every
    // group fills, and a fourth would arrive while they wait.
    slow.holdUntil = (inFlight, arrived) => inFlight >= 3 || arrived === 10;
    const e = await startTestEmulator({ webhookUrl: slow.url, webhookConcurrency: 3 });
    try {
      const cu = uid("cust");
      await issueKey(e, cu);
      const now = await clockNow(e);
      await e.api.post("/subscribe/payments/schedule", {
        customer_uid: cu,
        schedules: Array.from({ length: 10 }, (_, i) => ({ merchant_uid: uid("c"), schedule_at: now + 5 + i, amount: 100, name: "x" })),
      });
      const res = await advance(e, 60);
      expect(res.webhooks).toEqual({ delivered: 10, failed: 0, dropped: 0 });
      expect(slow.received).toHaveLength(10);
      expect(slow.maxInFlight).toBe(3);
    } finally {
      await e.close();
      await slow.close();
    }
  });

  it("gives up on a webhook receiver that never answers after webhookTimeoutMs", async () => {
    const sockets = new Set<import("node:net").Socket>();
    const hanging = http.createServer(() => {
      /* never answers */
    });
    hanging.on("connection", (s) => sockets.add(s));
    await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/hook`;
    const e = await startTestEmulator({ webhookUrl: url, webhookTimeoutMs: 200 });
    try {
      const cu = uid("cust");
      await issueKey(e, cu);
      const now = await clockNow(e);
      await e.api.post("/subscribe/payments/schedule", { customer_uid: cu, schedules: [{ merchant_uid: uid("s"), schedule_at: now + 5, amount: 100, name: "x" }] });
      // The receiver never answers: "failed" (not a hang past the test's timeout) is the give-up.
      expect((await advance(e, 5)).webhooks).toEqual({ delivered: 0, failed: 1, dropped: 0 });
    } finally {
      await e.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
    }
  });

  it("declines charges once a stored card's expiry month has passed on the emulator clock", async () => {
    const cu = uid("cust");
    const nextMonth = new Date(Date.now() + 32 * 24 * 3600 * 1000).toISOString().slice(0, 7); // YYYY-MM
    await issueKey(t, cu, { expiry: nextMonth });
    const now = await clockNow(t);
    const mu = uid("s");
    await schedule(cu, [{ merchant_uid: mu, schedule_at: now + 80 * 24 * 3600, amount: 100, name: "x" }]);
    const res = await advance(t, 80 * 24 * 3600);
    expect(res.executed).toEqual([{ merchant_uid: mu, imp_uid: expect.any(String), status: "failed" }]);
    const p = (await t.api.get<Envelope<{ fail_reason: string }>>(`/payments/${res.executed[0].imp_uid}`)).data.response;
    expect(p.fail_reason).toContain("유효기간");
  });

  it("runs due schedules in the background as real time passes (autorun ticker)", async () => {
    const ticking = await startTestEmulator({ webhookUrl: hooks.url, autoRunIntervalMs: 50 });
    try {
      const cu = uid("cust");
      await issueKey(ticking, cu);
      const now = await clockNow(ticking);
      const mu = uid("tick");
      await ticking.api.post("/subscribe/payments/schedule", { customer_uid: cu, schedules: [{ merchant_uid: mu, schedule_at: now + 1, amount: 100, name: "x" }] });
      const hook = await hooks.waitUntil((h) => h.body.merchant_uid === mu);
      expect(hook.body.status).toBe("paid");
      // Ran exactly once, even though a later advance also looks for due schedules.
      expect((await advance(ticking, 10)).executed).toEqual([]);
      expect((await ticking.api.get<Envelope<ScheduleResult>>(`/subscribe/payments/schedule/${mu}`)).data.response.schedule_status).toBe("executed");
    } finally {
      await ticking.close();
    }
  });

  it("validates the advance body", async () => {
    expect((await t.http.post("/__emulator/clock/advance", { seconds: -5 })).status).toBe(400);
    expect((await t.http.post("/__emulator/clock/advance", {})).status).toBe(400);
    expect((await t.http.post("/__emulator/clock/advance", "{oops", { headers: { "Content-Type": "application/json" } })).status).toBe(400);
  });
});

describe("emulator: reschedule and retry of a failed or revoked schedule", () => {
  let t: TestEmulator;
  let hooks: WebhookReceiver;
  beforeAll(async () => {
    hooks = await new WebhookReceiver().start();
    t = await startTestEmulator({ webhookUrl: hooks.url });
  });
  afterAll(async () => {
    await t.close();
    await hooks.close();
  });

  /** A schedule of a declined card that ran and failed. */
  async function failedSchedule(): Promise<{ cu: string; mu: string; failedImp: string }> {
    const cu = uid("cust");
    await issueKey(t, cu, { card_number: TEST_CARDS.DECLINED_LIMIT });
    const mu = uid("sched");
    const now = await clockNow(t);
    const r = await t.api.post<Envelope>("/subscribe/payments/schedule", { customer_uid: cu, schedules: [{ merchant_uid: mu, schedule_at: now + 60, amount: 5000, name: "x" }] });
    expect(r.data.code).toBe(0);
    await advance(t, 61);
    const s = (await t.api.get<Envelope<ScheduleResult>>(`/subscribe/payments/schedule/${mu}`)).data.response;
    expect(s).toMatchObject({ schedule_status: "executed", payment_status: "failed" });
    return { cu, mu, failedImp: s.imp_uid! };
  }

  it("reschedules a failed schedule: pending again at the new time, then run by the clock", async () => {
    const { cu, mu, failedImp } = await failedSchedule();
    const now = await clockNow(t);
    expect((await t.api.post<Envelope>(`/subscribe/payments/schedule/${mu}/reschedule`, { schedule_at: now - 1 })).status).toBe(400);
    const r = await t.api.post<Envelope<ScheduleResult>>(`/subscribe/payments/schedule/${mu}/reschedule`, { schedule_at: now + 3600 });
    expect(r.status).toBe(200);
    expect(r.data.response).toMatchObject({ merchant_uid: mu, schedule_status: "scheduled", schedule_at: now + 3600, executed_at: 0, imp_uid: null, payment_status: null });
    // Pending now: neither can be asked again until it runs.
    expect((await t.api.post<Envelope>(`/subscribe/payments/schedule/${mu}/retry`)).status).toBe(400);

    await issueKey(t, cu); // the customer fixes the card
    const run = await t.http.post<{ executed: { merchant_uid: string; status: string; imp_uid: string }[] }>("/__emulator/clock/advance", { seconds: 3600 });
    expect(run.data.executed).toEqual([expect.objectContaining({ merchant_uid: mu, status: "paid" })]);
    expect(run.data.executed[0].imp_uid).not.toBe(failedImp);
    const after = (await t.api.get<Envelope<ScheduleResult>>(`/subscribe/payments/schedule/${mu}`)).data.response;
    expect(after).toMatchObject({ schedule_status: "executed", payment_status: "paid" });
    // Paid: neither may be asked again.
    expect((await t.api.post<Envelope>(`/subscribe/payments/schedule/${mu}/reschedule`, { schedule_at: now + 7200 })).status).toBe(400);
    expect((await t.api.post<Envelope>(`/subscribe/payments/schedule/${mu}/retry`)).status).toBe(400);
  });

  it("retries a failed schedule now: a new payment (paid or failed) and its webhook", async () => {
    const { cu, mu, failedImp } = await failedSchedule();
    const declined = await t.api.post<Envelope<{ imp_uid: string; status: string; customer_uid_usage: string }>>(`/subscribe/payments/schedule/${mu}/retry`);
    expect(declined.status).toBe(200);
    expect(declined.data.response).toMatchObject({ status: "failed", customer_uid_usage: "payment.scheduled" });
    expect(declined.data.response.imp_uid).not.toBe(failedImp);
    await hooks.waitUntil((w) => w.body.imp_uid === declined.data.response.imp_uid && w.body.status === "failed");

    await issueKey(t, cu);
    const paid = await t.api.post<Envelope<{ imp_uid: string; status: string; merchant_uid: string }>>(`/subscribe/payments/schedule/${mu}/retry`);
    expect(paid.data.response).toMatchObject({ status: "paid", merchant_uid: mu });
    await hooks.waitUntil((w) => w.body.imp_uid === paid.data.response.imp_uid && w.body.status === "paid");
    expect((await t.api.get<Envelope<ScheduleResult>>(`/subscribe/payments/schedule/${mu}`)).data.response).toMatchObject({
      imp_uid: paid.data.response.imp_uid,
      payment_status: "paid",
    });
  });

  it("retries a revoked schedule; refuses unknown schedules (404) and a deleted billing key (404)", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const mu = uid("sched");
    const now = await clockNow(t);
    await t.api.post<Envelope>("/subscribe/payments/schedule", { customer_uid: cu, schedules: [{ merchant_uid: mu, schedule_at: now + 600, amount: 5000, name: "x" }] });
    expect((await t.api.post<Envelope>("/subscribe/payments/unschedule", { customer_uid: cu, merchant_uid: [mu] })).data.code).toBe(0);
    const r = await t.api.post<Envelope<{ status: string }>>(`/subscribe/payments/schedule/${mu}/retry`);
    expect(r.data.response.status).toBe("paid");
    expect((await t.api.post<Envelope>(`/subscribe/payments/schedule/${uid("none")}/retry`)).status).toBe(404);

    const { cu: gone, mu: goneMu } = await failedSchedule();
    await t.api.delete(`/subscribe/customers/${gone}`);
    expect((await t.api.post<Envelope>(`/subscribe/payments/schedule/${goneMu}/retry`)).status).toBe(404);
  });
});
