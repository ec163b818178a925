import { TZDate } from "@date-fns/tz";
import { addDays, addMonths, addWeeks, addYears } from "date-fns";
import { BillingInterval } from "../../db/entities/enums";

/**
 * Start of billing boundary `k` (k = 0 is the anchor): anchor + k intervals,
 * computed in the billing time zone. Always computed from the anchor, never
 * from the previous boundary, so a 31st anchor bills on Feb 28/29 and comes
 * back to the 31st in March (the drift Kill Bill's bug #127 had).
 */
export function boundary(anchor: Date, interval: BillingInterval, intervalCount: number, k: number, timeZone: string): Date {
  const a = new TZDate(anchor.getTime(), timeZone);
  const n = k * intervalCount;
  let d: Date;
  switch (interval) {
    case BillingInterval.DAY:
      d = addDays(a, n);
      break;
    case BillingInterval.WEEK:
      d = addWeeks(a, n);
      break;
    case BillingInterval.MONTH:
      d = addMonths(a, n);
      break;
    case BillingInterval.YEAR:
      d = addYears(a, n);
      break;
  }
  return new Date(d.getTime());
}

/** Period n (1-based) runs from boundary n-1 to boundary n. */
export function periodOf(
  anchor: Date,
  interval: BillingInterval,
  intervalCount: number,
  period: number,
  timeZone: string,
): { start: Date; end: Date } {
  return {
    start: boundary(anchor, interval, intervalCount, period - 1, timeZone),
    end: boundary(anchor, interval, intervalCount, period, timeZone),
  };
}
