import { boundary, periodOf } from "../../src/billing/domain/billing-dates";
import { BillingInterval } from "../../src/db/entities/enums";

const SEOUL = "Asia/Seoul";
const NEW_YORK = "America/New_York";

/** ISO instants of boundaries 0..n, for readable expectations. */
function boundaries(anchorIso: string, interval: BillingInterval, count: number, n: number, tz = SEOUL): string[] {
  const anchor = new Date(anchorIso);
  return Array.from({ length: n + 1 }, (_, k) => boundary(anchor, interval, count, k, tz).toISOString());
}

/** The same instants written in Korean time, e.g. "2027-02-28T10:00". */
function seoulLocal(iso: string): string {
  const d = new Date(new Date(iso).getTime() + 9 * 3600_000);
  return d.toISOString().slice(0, 16);
}

describe("billing boundaries (Asia/Seoul)", () => {
  it("bills a 31st monthly anchor on the last day of shorter months and returns to the 31st (non-leap year)", () => {
    const b = boundaries("2027-01-31T10:00:00+09:00", BillingInterval.MONTH, 1, 13).map(seoulLocal);
    expect(b).toEqual([
      "2027-01-31T10:00",
      "2027-02-28T10:00",
      "2027-03-31T10:00",
      "2027-04-30T10:00",
      "2027-05-31T10:00",
      "2027-06-30T10:00",
      "2027-07-31T10:00",
      "2027-08-31T10:00",
      "2027-09-30T10:00",
      "2027-10-31T10:00",
      "2027-11-30T10:00",
      "2027-12-31T10:00",
      "2028-01-31T10:00",
      "2028-02-29T10:00",
    ]);
  });

  it("uses Feb 29 in a leap year, then Mar 31", () => {
    const b = boundaries("2028-01-31T10:00:00+09:00", BillingInterval.MONTH, 1, 2).map(seoulLocal);
    expect(b).toEqual(["2028-01-31T10:00", "2028-02-29T10:00", "2028-03-31T10:00"]);
  });

  it("computes every boundary from the anchor, so a 30th anchor does not drift to the 28th after February", () => {
    const b = boundaries("2027-01-30T09:00:00+09:00", BillingInterval.MONTH, 1, 3).map(seoulLocal);
    expect(b).toEqual(["2027-01-30T09:00", "2027-02-28T09:00", "2027-03-30T09:00", "2027-04-30T09:00"]);
  });

  it("keeps a Feb 29 yearly anchor on Feb 28 in common years and Feb 29 in leap years", () => {
    const b = boundaries("2028-02-29T12:00:00+09:00", BillingInterval.YEAR, 1, 4).map(seoulLocal);
    expect(b).toEqual(["2028-02-29T12:00", "2029-02-28T12:00", "2030-02-28T12:00", "2031-02-28T12:00", "2032-02-29T12:00"]);
  });

  it("multiplies the interval by intervalCount (quarterly from Nov 30)", () => {
    const b = boundaries("2027-11-30T10:00:00+09:00", BillingInterval.MONTH, 3, 3).map(seoulLocal);
    expect(b).toEqual(["2027-11-30T10:00", "2028-02-29T10:00", "2028-05-30T10:00", "2028-08-30T10:00"]);
  });

  it("steps weeks and days by the calendar (2-weekly, 10-daily)", () => {
    expect(boundaries("2027-12-27T10:00:00+09:00", BillingInterval.WEEK, 2, 2).map(seoulLocal)).toEqual([
      "2027-12-27T10:00",
      "2028-01-10T10:00",
      "2028-01-24T10:00",
    ]);
    expect(boundaries("2028-02-25T10:00:00+09:00", BillingInterval.DAY, 10, 2).map(seoulLocal)).toEqual([
      "2028-02-25T10:00",
      "2028-03-06T10:00",
      "2028-03-16T10:00",
    ]);
  });

  it("computes months in Korean time: a Seoul midnight anchor is 15:00 UTC the day before", () => {
    // Midnight, 1 March in Seoul is 28 February 15:00 UTC.
    const anchor = "2027-03-01T00:00:00+09:00";
    expect(new Date(anchor).toISOString()).toBe("2027-02-28T15:00:00.000Z");
    // Seoul: 1 April 00:00 KST. Month arithmetic done in UTC would give 28 March (the UTC date plus a month).
    expect(boundaries(anchor, BillingInterval.MONTH, 1, 1)[1]).toBe("2027-03-31T15:00:00.000Z");
    expect(boundaries(anchor, BillingInterval.MONTH, 1, 1, "UTC")[1]).toBe("2027-03-28T15:00:00.000Z");
  });

  it("bills a Seoul month-end midnight anchor on Feb 28 Korean time, not on Mar 1", () => {
    const b = boundaries("2027-01-31T00:00:00+09:00", BillingInterval.MONTH, 1, 2);
    expect(b.map(seoulLocal)).toEqual(["2027-01-31T00:00", "2027-02-28T00:00", "2027-03-31T00:00"]);
    // In UTC the same instant is the 30th, whose month-later is the 28th 15:00 UTC: 1 March in Seoul.
    expect(seoulLocal(boundaries("2027-01-31T00:00:00+09:00", BillingInterval.MONTH, 1, 1, "UTC")[1])).toBe("2027-03-01T00:00");
  });

  it("has no daylight saving time: every Seoul day is 24 hours, all year", () => {
    const anchor = new Date("2027-01-01T09:00:00+09:00");
    for (let k = 1; k <= 366; k++) {
      const gap = boundary(anchor, BillingInterval.DAY, 1, k, SEOUL).getTime() - boundary(anchor, BillingInterval.DAY, 1, k - 1, SEOUL).getTime();
      expect(gap).toBe(86_400_000);
    }
  });
});

describe("billing boundaries in a zone with daylight saving time", () => {
  it("keeps the local wall-clock time across the spring change (a 23-hour day)", () => {
    // New York moved to EDT on 14 March 2027 at 02:00.
    const b = boundaries("2027-03-13T09:00:00-05:00", BillingInterval.DAY, 1, 1, NEW_YORK);
    expect(b).toEqual(["2027-03-13T14:00:00.000Z", "2027-03-14T13:00:00.000Z"]);
  });

  it("keeps 09:00 local on monthly boundaries in winter and summer, unlike Seoul's fixed UTC offset", () => {
    const ny = boundaries("2027-01-15T09:00:00-05:00", BillingInterval.MONTH, 1, 10, NEW_YORK);
    expect(ny[0]).toBe("2027-01-15T14:00:00.000Z");
    expect(ny[2]).toBe("2027-03-15T13:00:00.000Z"); // EDT
    expect(ny[10]).toBe("2027-11-15T14:00:00.000Z"); // EST again
    const seoul = boundaries("2027-01-15T09:00:00+09:00", BillingInterval.MONTH, 1, 10, SEOUL);
    expect(new Set(seoul.map((iso) => iso.slice(11)))).toEqual(new Set(["00:00:00.000Z"]));
  });
});

describe("periodOf", () => {
  it("makes period n run from boundary n-1 to boundary n, with no gap or overlap", () => {
    const anchor = new Date("2027-01-31T10:00:00+09:00");
    let previousEnd: Date | null = null;
    for (let n = 1; n <= 24; n++) {
      const p = periodOf(anchor, BillingInterval.MONTH, 1, n, SEOUL);
      expect(p.start.getTime()).toBeLessThan(p.end.getTime());
      if (previousEnd) expect(p.start.getTime()).toBe(previousEnd.getTime());
      previousEnd = p.end;
    }
    const p2 = periodOf(anchor, BillingInterval.MONTH, 1, 2, SEOUL);
    expect([seoulLocal(p2.start.toISOString()), seoulLocal(p2.end.toISOString())]).toEqual(["2027-02-28T10:00", "2027-03-31T10:00"]);
    expect(periodOf(anchor, BillingInterval.MONTH, 1, 1, SEOUL).start.getTime()).toBe(anchor.getTime());
  });
});
