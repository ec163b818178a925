import { Harness, registerCard, uid } from "../support/harness";
import {
  advanceTo,
  customerSchedules,
  emulatorNow,
  getSub,
  iamportSchedule,
  paymentRows,
  renewalUid,
  seoul,
  startSub,
  startSubHarness,
  StartInput,
  Sub,
  unix,
} from "./helpers";

let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

/**
 * Moves Iamport's clock from one due renewal to the next (10 s past the
 * earliest nextPaymentAt) until `until`; returns how many clock steps it took.
 */
async function renewUntil(ids: string[], until: number): Promise<number> {
  let steps = 0;
  for (;;) {
    const subs = await Promise.all(ids.map((id) => getSub(h, id)));
    const due = subs.filter((s) => s.nextPaymentAt).map((s) => unix(s.nextPaymentAt!));
    const next = Math.min(...due);
    if (!Number.isFinite(next) || next > until) return steps;
    const r = await advanceTo(h, next + 10);
    expect(r.webhooks.failed).toBe(0);
    expect(r.executed.length).toBeGreaterThan(0);
    expect(r.executed.every((e) => e.status === "paid")).toBe(true);
    steps += 1;
  }
}

/**
 * The invariant after every renewal: exactly one PAID payment per period,
 * paid 10 s after its period started (its boundary), and exactly one next
 * payment, SCHEDULED in the database and at Iamport, at the end of the
 * current period.
 */
async function expectRenewedThrough(sub: Sub, boundaries: Date[]): Promise<void> {
  const boundariesSeoul = boundaries.map((b) => seoul(b));
  const now = await getSub(h, sub.id);
  const periods = boundariesSeoul.length - 1;
  expect(now.status).toBe("ACTIVE");
  expect(seoul(now.currentPeriodStart)).toBe(boundariesSeoul[periods - 1]);
  expect(seoul(now.currentPeriodEnd)).toBe(boundariesSeoul[periods]);
  expect(now.nextPaymentAt).toBe(now.currentPeriodEnd);

  const rows = await paymentRows(h, sub.id);
  const paid = rows.filter((r) => r.status === "PAID");
  expect(paid.map((r) => r.period)).toEqual(Array.from({ length: periods }, (_, i) => i + 1));
  expect(paid.every((r) => r.attempt === 1)).toBe(true);
  // Period n (n >= 2) is charged by Iamport's scheduler when its boundary arrives (the clock steps 10 s past one).
  paid.slice(1).forEach((r, i) => {
    const late = r.paid_at!.getTime() - boundaries[i + 1].getTime();
    expect([r.merchant_uid, late >= 0 && late <= 60_000]).toEqual([r.merchant_uid, true]);
  });
  const open = rows.filter((r) => r.status !== "PAID");
  expect(open.map((r) => [r.merchant_uid, r.status])).toEqual([[renewalUid(sub.id, periods + 1), "SCHEDULED"]]);

  const atIamport = await customerSchedules(h, sub.customerUid, "scheduled");
  expect(atIamport.map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, periods + 1)]);
  expect(seoul(new Date(atIamport[0].schedule_at * 1000))).toBe(boundariesSeoul[periods]);
  const executed = await customerSchedules(h, sub.customerUid, "executed");
  expect(executed).toHaveLength(periods - 1);
  expect(executed.every((s) => s.payment_status === "paid")).toBe(true);
}

/** Boundaries of a subscription started at `first` (its first charge), n periods on. */
function expected(first: string, step: (d: Date, k: number) => Date, n: number): Date[] {
  const start = new Date(first);
  return Array.from({ length: n + 1 }, (_, k) => step(start, k));
}

function seoulCalendar(d: Date): { y: number; m: number; day: number; hm: number } {
  const local = new Date(d.getTime() + 9 * 3600_000);
  return { y: local.getUTCFullYear(), m: local.getUTCMonth(), day: local.getUTCDate(), hm: d.getTime() - Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate()) + 9 * 3600_000 };
}

/** Adds months in Korean time, clamping to the month's last day (the documented rule). */
function addMonthsSeoul(d: Date, months: number): Date {
  const c = seoulCalendar(d);
  const target = new Date(Date.UTC(c.y, c.m + months, 1));
  const last = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  return new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth(), Math.min(c.day, last)) + c.hm - 9 * 3600_000);
}

describe("renewals driven by Iamport's clock", () => {
  it("renews monthly, quarterly, yearly and 2-weekly subscriptions for a year: one PAID per period, one next schedule", async () => {
    const customers = await Promise.all([1, 2, 3, 4].map(() => registerCard(h, uid("c"))));
    const inputs: StartInput[] = [
      { customerUid: customers[0], interval: "MONTH" },
      { customerUid: customers[1], interval: "MONTH", intervalCount: 3 },
      { customerUid: customers[2], interval: "YEAR" },
      { customerUid: customers[3], interval: "WEEK", intervalCount: 2 },
    ];
    const subs: Sub[] = [];
    for (const input of inputs) subs.push(await startSub(h, input));
    const yearLater = unix(addMonthsSeoul(new Date(subs[0].currentPeriodStart!), 12));

    const steps = await renewUntil(
      subs.map((s) => s.id),
      yearLater + 60,
    );
    // 12 monthly, 4 quarterly, 1 yearly and 26 fortnightly renewals; some fall at the same time.
    expect(steps).toBeGreaterThanOrEqual(26);

    await expectRenewedThrough(subs[0], expected(subs[0].currentPeriodStart!, (d, k) => addMonthsSeoul(d, k), 13));
    await expectRenewedThrough(subs[1], expected(subs[1].currentPeriodStart!, (d, k) => addMonthsSeoul(d, 3 * k), 5));
    await expectRenewedThrough(subs[2], expected(subs[2].currentPeriodStart!, (d, k) => addMonthsSeoul(d, 12 * k), 2));
    const fortnights = Math.floor((yearLater + 60 - unix(subs[3].currentPeriodStart!)) / (14 * 86_400)) + 1;
    await expectRenewedThrough(subs[3], expected(subs[3].currentPeriodStart!, (d, k) => new Date(d.getTime() + k * 14 * 86_400_000), fortnights));
  });

  it("renews daily and every-3-days subscriptions started after Iamport's clock moved on, from the time of their first charge", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const before = await emulatorNow(h);
    const daily = await startSub(h, { customerUid, interval: "DAY" });
    const every3 = await startSub(h, { customerUid: await registerCard(h, uid("c")), interval: "DAY", intervalCount: 3 });
    // Iamport's clock is about a year ahead of the server's by now: the period starts when Iamport charged,
    // during the call by Iamport's clock.
    const iamportNow = await emulatorNow(h);
    expect(unix(daily.currentPeriodStart!)).toBeGreaterThanOrEqual(before);
    expect(unix(daily.currentPeriodStart!)).toBeLessThanOrEqual(iamportNow);
    expect(unix(daily.currentPeriodEnd!) - unix(daily.currentPeriodStart!)).toBe(86_400);

    await renewUntil([daily.id, every3.id], unix(daily.currentPeriodStart!) + 9 * 86_400 + 60);
    await expectRenewedThrough(daily, expected(daily.currentPeriodStart!, (d, k) => new Date(d.getTime() + k * 86_400_000), 10));
    await expectRenewedThrough(every3, expected(every3.currentPeriodStart!, (d, k) => new Date(d.getTime() + k * 3 * 86_400_000), 4));
  });

  it("keeps the next payment at Iamport on the period boundary, for a look-up by merchant_uid", async () => {
    const sub = await startSub(h, { customerUid: await registerCard(h, uid("c")), interval: "WEEK" });
    const s = await iamportSchedule(h, renewalUid(sub.id, 2));
    expect(s).toMatchObject({ schedule_status: "scheduled", customer_uid: sub.customerUid, schedule_at: unix(sub.currentPeriodEnd!) });
  });
});
