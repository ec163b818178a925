import { prorate, withinWithdrawalWindow } from "../../src/billing/domain/proration";

/** The pro-rata refund of a cancelled period: calendar days in the billing time zone, the cancellation day used. */

const TZ = "Asia/Seoul";
/** An instant written in Korean time. */
const kst = (s: string) => new Date(`${s}+09:00`);

describe("prorate", () => {
  const jan = { start: kst("2027-01-15T10:00:00"), end: kst("2027-02-15T10:00:00") }; // 31 days
  const apr = { start: kst("2027-04-05T10:00:00"), end: kst("2027-05-05T10:00:00") }; // 30 days
  const feb = { start: kst("2027-02-10T09:00:00"), end: kst("2027-03-10T09:00:00") }; // 28 days
  const leap = { start: kst("2028-02-10T09:00:00"), end: kst("2028-03-10T09:00:00") }; // 29 days

  it.each([
    // a 31-day month
    [jan, "2027-01-15T10:00:01", 31, 1, Math.floor((31_000 * 30) / 31)],
    [jan, "2027-01-20T12:00:00", 31, 6, 25_000],
    [jan, "2027-02-14T23:00:00", 31, 31, 0],
    // a 30-day month
    [apr, "2027-04-05T11:00:00", 30, 1, 29_966],
    [apr, "2027-04-19T08:00:00", 30, 15, 15_500],
    [apr, "2027-05-04T10:00:00", 30, 30, 0],
    // across February, in a common and a leap year
    [feb, "2027-02-28T20:00:00", 28, 19, Math.floor((31_000 * 9) / 28)],
    [feb, "2027-03-01T00:30:00", 28, 20, Math.floor((31_000 * 8) / 28)],
    [leap, "2028-02-29T12:00:00", 29, 20, Math.floor((31_000 * 9) / 29)],
  ])("case %#", (period, at, periodDays, usedDays, refund) => {
    expect(prorate(period, kst(at), 31_000, TZ)).toEqual({ periodDays, usedDays, proratedRefund: refund });
  });

  it("counts days in the billing time zone near midnight: one minute apart across Seoul's midnight is one more day used", () => {
    // 23:59 and 00:01 in Seoul are the same UTC date (14:59 and 15:01 UTC).
    const before = prorate(apr, kst("2027-04-10T23:59:00"), 30_000, TZ);
    const after = prorate(apr, kst("2027-04-11T00:01:00"), 30_000, TZ);
    expect([before.usedDays, after.usedDays]).toEqual([6, 7]);
    expect([before.proratedRefund, after.proratedRefund]).toEqual([24_000, 23_000]);
    // In UTC both are April 10th: the same day used.
    expect(prorate(apr, kst("2027-04-10T23:59:00"), 30_000, "UTC").usedDays).toBe(prorate(apr, kst("2027-04-11T00:01:00"), 30_000, "UTC").usedDays);
  });

  it("rounds down to the won, never refunding more than the unused share", () => {
    const r = prorate(jan, kst("2027-01-16T09:00:00"), 9900, TZ); // 29 of 31 days unused: 9261.29…
    expect(r).toEqual({ periodDays: 31, usedDays: 2, proratedRefund: 9261 });
  });

  it("refunds nothing after the period and counts the first day as used even before it starts", () => {
    expect(prorate(jan, kst("2027-03-01T00:00:00"), 31_000, TZ)).toMatchObject({ usedDays: 31, proratedRefund: 0 });
    expect(prorate(jan, kst("2027-01-15T09:00:00"), 31_000, TZ)).toMatchObject({ usedDays: 1 });
  });
});

describe("withinWithdrawalWindow", () => {
  it("is true until the same moment WITHDRAWAL_DAYS days after the payment", () => {
    const paid = kst("2027-01-15T10:00:00");
    expect(withinWithdrawalWindow(paid, kst("2027-01-22T09:59:59"), 7, TZ)).toBe(true);
    expect(withinWithdrawalWindow(paid, kst("2027-01-22T10:00:00"), 7, TZ)).toBe(false);
    expect(withinWithdrawalWindow(paid, kst("2027-01-15T10:00:00"), 0, TZ)).toBe(false);
  });
});
