import { Harness, registerCard, TEST_CARDS, uid } from "../support/harness";
import {
  customerSchedules,
  emulatorNow,
  getSub,
  iamportPaymentByOrder,
  iamportSchedule,
  paymentRows,
  renewalUid,
  START,
  startSub,
  startSubHarness,
  unix,
} from "./helpers";

let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

describe("startSubscription without startAt", () => {
  it("charges the first period at once and schedules the second at Iamport for the end of the first", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const before = await emulatorNow(h);
    const sub = await startSub(h, { customerUid, amount: 12_900, interval: "MONTH" });
    const after = await emulatorNow(h);

    expect(sub).toMatchObject({ status: "ACTIVE", statusReason: null, cancelAtPeriodEnd: false });
    expect(sub.id).toMatch(/^s[0-9a-z]+$/);
    // The period starts when Iamport took the money (during the call, by its clock) and lasts one month.
    const start = unix(sub.currentPeriodStart!);
    expect(start).toBeGreaterThanOrEqual(before);
    expect(start).toBeLessThanOrEqual(after);
    const end = new Date(sub.currentPeriodStart!);
    end.setUTCMonth(end.getUTCMonth() + 1);
    expect(sub.currentPeriodEnd).toBe(end.toISOString());
    expect(sub.nextPaymentAt).toBe(sub.currentPeriodEnd);

    const rows = await paymentRows(h, sub.id);
    expect(rows.map((r) => [r.merchant_uid, r.kind, r.status])).toEqual([
      [renewalUid(sub.id, 1), "AGAIN", "PAID"],
      [renewalUid(sub.id, 2), "SCHEDULE", "SCHEDULED"],
    ]);
    expect(rows[0].amount).toBe(12_900);

    const paid = await iamportPaymentByOrder(h, renewalUid(sub.id, 1));
    expect(paid).toMatchObject({ status: "paid", amount: 12_900, imp_uid: rows[0].imp_uid });
    const next = await iamportSchedule(h, renewalUid(sub.id, 2));
    expect(next).toMatchObject({ schedule_status: "scheduled", amount: 12_900, schedule_at: unix(sub.currentPeriodEnd!) });
    expect(await customerSchedules(h, customerUid, "scheduled")).toHaveLength(1);
  });

  it("leaves no active subscription when the first charge is declined: CANCELED with the reason, nothing scheduled", async () => {
    const customerUid = await registerCard(h, uid("c"), TEST_CARDS.declined);
    const sub = await startSub(h, { customerUid });
    expect(sub.status).toBe("CANCELED");
    expect(sub.statusReason).toMatch(/first payment declined/);
    expect(sub.statusReason).toMatch(/한도초과/);
    expect(sub.nextPaymentAt).toBeNull();
    expect(sub.canceledAt).not.toBeNull();
    const rows = await paymentRows(h, sub.id);
    expect(rows.map((r) => [r.period, r.attempt, r.status])).toEqual([[1, 1, "FAILED"]]);
    expect(rows[0].fail_reason).toMatch(/한도초과/);
    expect(await customerSchedules(h, customerUid)).toEqual([]);
  });

  it("also cancels a subscription whose first charge fails for insufficient balance", async () => {
    const customerUid = await registerCard(h, uid("c"), TEST_CARDS.insufficient);
    const sub = await startSub(h, { customerUid });
    expect(sub).toMatchObject({ status: "CANCELED" });
    expect(sub.statusReason).toMatch(/잔액부족/);
    expect(await customerSchedules(h, customerUid)).toEqual([]);
  });
});

describe("startSubscription with startAt", () => {
  it("charges nothing now and schedules the first payment at startAt", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const startAt = new Date((await emulatorNow(h)) * 1000 + 3 * 86_400_000);
    startAt.setUTCMilliseconds(0);
    const sub = await startSub(h, { customerUid, interval: "WEEK", startAt: startAt.toISOString() });
    expect(sub.status).toBe("ACTIVE");
    expect(sub.nextPaymentAt).toBe(startAt.toISOString());
    expect(sub.currentPeriodStart).toBeNull();

    const rows = await paymentRows(h, sub.id);
    expect(rows.map((r) => [r.merchant_uid, r.kind, r.status])).toEqual([[renewalUid(sub.id, 1), "SCHEDULE", "SCHEDULED"]]);
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 1))).toBeNull();
    expect(await iamportSchedule(h, renewalUid(sub.id, 1))).toMatchObject({ schedule_status: "scheduled", schedule_at: unix(startAt) });

    // When Iamport runs it, the first week is paid and the second scheduled a week after startAt.
    await h.advance(unix(startAt) - (await emulatorNow(h)) + 5);
    const after = await getSub(h, sub.id);
    expect(after).toMatchObject({ status: "ACTIVE", currentPeriodStart: startAt.toISOString() });
    const week = new Date(startAt.getTime() + 7 * 86_400_000).toISOString();
    expect(after.currentPeriodEnd).toBe(week);
    expect(after.nextPaymentAt).toBe(week);
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "SCHEDULED"],
    ]);
  });

  it("refuses a startAt in the past with BAD_USER_INPUT and creates nothing", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const r = await h.gql(START, {
      input: { customerUid, name: "x", amount: 1000, interval: "MONTH", startAt: new Date(Date.now() - 60_000).toISOString() },
    });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "startAt" });
    const rows = await h.sql<{ n: string }>(`select count(*) as n from subscriptions where customer_uid = ?`, [customerUid]);
    expect(Number(rows[0].n)).toBe(0);
  });

  it("refuses a startAt that Iamport's clock has already passed (BAD_USER_INPUT) and keeps nothing", async () => {
    const customerUid = await registerCard(h, uid("c"));
    // Iamport's clock runs ten days ahead of this server's: tomorrow is in Iamport's past.
    await h.advance(10 * 86_400);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    const r = await h.gql(START, { input: { customerUid, name: "x", amount: 1000, interval: "MONTH", startAt: tomorrow } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "startAt" });
    expect(await h.sql(`select id from subscriptions where customer_uid = ?`, [customerUid])).toEqual([]);
    expect(await h.sql(`select id from payments where customer_uid = ?`, [customerUid])).toEqual([]);
    expect(await customerSchedules(h, customerUid)).toEqual([]);
  });

  it.each([
    [{ intervalCount: 0 }, "intervalCount"],
    [{ intervalCount: 367 }, "intervalCount"],
    [{ amount: 0 }, "amount"],
  ])("answers BAD_USER_INPUT for %p", async (patch, field) => {
    const customerUid = await registerCard(h, uid("c"));
    const r = await h.gql(START, { input: { customerUid, name: "x", amount: 1000, interval: "MONTH", ...patch } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
  });

  it("answers NOT_FOUND for a customer without a card", async () => {
    const r = await h.gql(START, { input: { customerUid: uid("nobody"), name: "x", amount: 1000, interval: "MONTH" } });
    expect(r.errors?.[0].extensions?.code).toBe("NOT_FOUND");
  });
});
