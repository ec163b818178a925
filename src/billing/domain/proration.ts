import { TZDate } from "@date-fns/tz";
import { addDays } from "date-fns";

/** What a cancellation now gives back of a paid period (cancellationPreview). */
export interface ProratedRefund {
  /** Calendar days of the paid period in the billing time zone (its last day is the day before its end). */
  periodDays: number;
  /** Days of it used, the day of the cancellation counted as used. */
  usedDays: number;
  /** The unused days' share of what was paid, in whole won, rounded down. */
  proratedRefund: number;
}

const DAY_MS = 86_400_000;

/** The calendar day (days since 1970-01-01) of `at` in `timeZone`. */
function calendarDay(at: Date, timeZone: string): number {
  const local = new TZDate(at.getTime(), timeZone);
  return Date.UTC(local.getFullYear(), local.getMonth(), local.getDate()) / DAY_MS;
}

/**
 * The pro-rata refund of a period that ran from `start` to `end` and was paid
 * `paid` won, when it is cancelled at `at`: days counted as calendar days in
 * the billing time zone, the cancellation's day counted as used (a customer
 * who cancels in the evening had that day), the refund in whole won rounded
 * down so it never exceeds the unused share.
 */
export function prorate(period: { start: Date; end: Date }, at: Date, paid: number, timeZone: string): ProratedRefund {
  const first = calendarDay(period.start, timeZone);
  const periodDays = Math.max(0, calendarDay(period.end, timeZone) - first);
  if (periodDays === 0 || paid <= 0) return { periodDays, usedDays: periodDays, proratedRefund: 0 };
  const usedDays = Math.min(periodDays, Math.max(1, calendarDay(at, timeZone) - first + 1));
  return { periodDays, usedDays, proratedRefund: Math.floor((paid * (periodDays - usedDays)) / periodDays) };
}

/** Whether `at` is within `days` days (in the billing time zone) of the moment of payment `paidAt`. */
export function withinWithdrawalWindow(paidAt: Date, at: Date, days: number, timeZone: string): boolean {
  const until = addDays(new TZDate(paidAt.getTime(), timeZone), days);
  return at.getTime() < until.getTime();
}
