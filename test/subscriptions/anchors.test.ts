import { Harness, registerCard, uid } from "../support/harness";
import {
  advancePastNextPayment,
  cancelSub,
  customerSchedules,
  getSub,
  iamportSchedule,
  paymentRows,
  renewalUid,
  seoul,
  startSub,
  startSubHarness,
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

/** Lets Iamport run the next payment and returns the subscription's current period in Korean time. */
async function renew(sub: Sub): Promise<{ sub: Sub; period: [string | null, string | null] }> {
  const before = await getSub(h, sub.id);
  const r = await advancePastNextPayment(h, before);
  expect(r.executed).toEqual([expect.objectContaining({ status: "paid" })]);
  const after = await getSub(h, sub.id);
  return { sub: after, period: [seoul(after.currentPeriodStart), seoul(after.currentPeriodEnd)] };
}

describe("a monthly anchor on the 31st", () => {
  it("bills on Feb 28 in a common year, then on Mar 31 again (2027), and on Feb 29 then Mar 31 in a leap year (2028)", async () => {
    const a = await startSub(h, { customerUid: await registerCard(h, uid("c")), startAt: "2027-01-31T10:00:00+09:00" });
    const b = await startSub(h, { customerUid: await registerCard(h, uid("c")), startAt: "2028-01-31T10:00:00+09:00" });
    expect(a).toMatchObject({ status: "ACTIVE", nextPaymentAt: "2027-01-31T01:00:00.000Z", currentPeriodStart: null });
    expect((await iamportSchedule(h, renewalUid(b.id, 1)))?.schedule_at).toBe(unix("2028-01-31T10:00:00+09:00"));

    expect((await renew(a)).period).toEqual(["2027-01-31T10:00", "2027-02-28T10:00"]);
    expect((await iamportSchedule(h, renewalUid(a.id, 2)))?.schedule_at).toBe(unix("2027-02-28T10:00:00+09:00"));
    expect((await renew(a)).period).toEqual(["2027-02-28T10:00", "2027-03-31T10:00"]);
    expect((await iamportSchedule(h, renewalUid(a.id, 3)))?.schedule_at).toBe(unix("2027-03-31T10:00:00+09:00"));
    const a3 = await renew(a);
    expect(a3.period).toEqual(["2027-03-31T10:00", "2027-04-30T10:00"]);
    expect(a3.sub.nextPaymentAt).toBe(new Date("2027-04-30T10:00:00+09:00").toISOString());

    // a stops here, so that moving the clock to 2028 does not run its renewals.
    await cancelSub(h, a.id);
    expect(await customerSchedules(h, a.customerUid, "scheduled")).toEqual([]);

    expect((await renew(b)).period).toEqual(["2028-01-31T10:00", "2028-02-29T10:00"]);
    expect((await iamportSchedule(h, renewalUid(b.id, 2)))?.schedule_at).toBe(unix("2028-02-29T10:00:00+09:00"));
    expect((await renew(b)).period).toEqual(["2028-02-29T10:00", "2028-03-31T10:00"]);
    expect((await renew(b)).period).toEqual(["2028-03-31T10:00", "2028-04-30T10:00"]);
    expect((await iamportSchedule(h, renewalUid(b.id, 4)))?.schedule_at).toBe(unix("2028-04-30T10:00:00+09:00"));

    const rows = await paymentRows(h, b.id);
    expect(rows.map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
      [3, "PAID"],
      [4, "SCHEDULED"],
    ]);
    expect(rows.map((r) => seoul(r.scheduled_at))).toEqual(["2028-01-31T10:00", "2028-02-29T10:00", "2028-03-31T10:00", "2028-04-30T10:00"]);
    await cancelSub(h, b.id);
  });

  it("keeps a 30th anchor on the 30th after February (2028-11-30 → Dec 30 → Jan 30 → Feb 28 → Mar 30)", async () => {
    const s = await startSub(h, { customerUid: await registerCard(h, uid("c")), startAt: "2028-11-30T09:00:00+09:00" });
    const periods: [string | null, string | null][] = [];
    for (let i = 0; i < 4; i++) periods.push((await renew(s)).period);
    expect(periods).toEqual([
      ["2028-11-30T09:00", "2028-12-30T09:00"],
      ["2028-12-30T09:00", "2029-01-30T09:00"],
      ["2029-01-30T09:00", "2029-02-28T09:00"],
      ["2029-02-28T09:00", "2029-03-30T09:00"],
    ]);
  });
});
