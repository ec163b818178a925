import { isReservedMerchantUid, SUBSCRIPTION_UID_PREFIX } from "./domain/merchant-uids";
import { BillingInterval } from "../db/entities/enums";
import { BadUserInputError } from "../errors";

/**
 * Input rules shared by GraphQL and REST. Each throws BadUserInputError naming
 * the field; messages never repeat card data back.
 */

const UID = /^[A-Za-z0-9_\-.:@]+$/;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Returns the card number as Iamport wants it (dddd-dddd-dddd-dddd), or throws. */
export function normalizeCardNumber(field: string, value: string): string {
  const digits = value.replace(/[\s-]/g, "");
  if (!/^\d{14,16}$/.test(digits)) throw new BadUserInputError(field, "must be 14 to 16 digits, with or without dashes");
  if (!luhnValid(digits)) throw new BadUserInputError(field, "is not a valid card number (checksum)");
  return digits.length === 16 ? digits.replace(/(\d{4})(?=\d)/g, "$1-") : digits;
}

/** `YYYY-MM`, not in the past (the card is valid through the end of that month). */
export function checkExpiry(field: string, value: string, now: Date = new Date()): string {
  const m = /^(\d{4})-(\d{2})$/.exec(value.trim());
  if (!m) throw new BadUserInputError(field, "must be YYYY-MM");
  const year = Number(m[1]);
  const month = Number(m[2]);
  if (month < 1 || month > 12) throw new BadUserInputError(field, "must be YYYY-MM with a month from 01 to 12");
  const current = now.getUTCFullYear() * 12 + now.getUTCMonth();
  if (year * 12 + (month - 1) < current) throw new BadUserInputError(field, "is in the past: the card has expired");
  if (year > now.getUTCFullYear() + 30) throw new BadUserInputError(field, "is too far in the future");
  return `${m[1]}-${m[2]}`;
}

export function checkBirth(field: string, value: string): string {
  const v = value.trim();
  if (!/^(\d{6}|\d{10})$/.test(v)) {
    throw new BadUserInputError(field, "must be 6 digits (YYMMDD) or a 10-digit business registration number");
  }
  return v;
}

export function checkPwd2(field: string, value: string | undefined | null): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (!/^\d{2}$/.test(value)) throw new BadUserInputError(field, "must be the first 2 digits of the card password");
  return value;
}

export function checkAmount(field: string, value: number, max: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new BadUserInputError(field, "must be a positive whole number of won");
  if (value > max) throw new BadUserInputError(field, `must not exceed ${max}`);
  return value;
}

/** The tax-free and VAT parts of a charge of `amount` (Iamport's `tax_free` and `vat_amount`). */
export interface TaxParts {
  taxFreeAmount: number;
  vatAmount: number | null;
}

/**
 * Checks the tax-free part (whole won from 0 to the amount; omitted: 0) and
 * the VAT part (whole won from 0 to the amount; omitted: null, which leaves
 * it to Iamport) of a charge of `amount`. `prefix` names the input (schedules[0].).
 */
export function checkTaxParts(prefix: string, amount: number, taxFree: number | null | undefined, vat: number | null | undefined): TaxParts {
  const taxFreeAmount = taxFree ?? 0;
  if (!Number.isSafeInteger(taxFreeAmount) || taxFreeAmount < 0 || taxFreeAmount > amount) {
    throw new BadUserInputError(`${prefix}taxFreeAmount`, `must be a whole number of won from 0 to the amount (${amount})`);
  }
  if (vat !== null && vat !== undefined && (!Number.isSafeInteger(vat) || vat < 0 || vat > amount)) {
    throw new BadUserInputError(`${prefix}vatAmount`, `must be a whole number of won from 0 to the amount (${amount})`);
  }
  return { taxFreeAmount, vatAmount: vat ?? null };
}

/** customer_uid / merchant_uid: 1 to 80 characters of letters, digits and _-.:@ */
export function checkUid(field: string, value: string): string {
  const v = value.trim();
  if (v.length === 0) throw new BadUserInputError(field, "must not be empty");
  if (v.length > 80) throw new BadUserInputError(field, "must be at most 80 characters");
  if (!UID.test(v)) throw new BadUserInputError(field, "may contain only letters, digits and _ - . : @");
  return v;
}

/** True when `value` would pass checkUid (for hints that are ignored rather than refused when malformed). */
export function isUid(value: string): boolean {
  const v = value.trim();
  return v.length > 0 && v.length <= 80 && UID.test(v);
}

/**
 * Free text received from outside (browser query strings) made safe to store:
 * PostgreSQL refuses NUL in text and jsonb, and lone UTF-16 surrogates in jsonb.
 */
export function storableText(value: string, maxLength: number): string {
  return value
    .slice(0, maxLength)
    // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed here
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, "")
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

/** A merchant_uid this server sends to Iamport: a uid of at most 40 characters (Iamport cuts longer ones). */
export const MERCHANT_UID_MAX = 40;
export function checkMerchantUid(field: string, value: string): string {
  const v = checkUid(field, value);
  if (v.length > MERCHANT_UID_MAX) throw new BadUserInputError(field, `must be at most ${MERCHANT_UID_MAX} characters (the payment providers' limit)`);
  if (isReservedMerchantUid(v)) throw new BadUserInputError(field, `must not start with ${SUBSCRIPTION_UID_PREFIX}, which names subscription charges`);
  return v;
}

export function checkText(field: string, value: string, maxLength: number): string {
  const v = value.trim();
  if (v.length === 0) throw new BadUserInputError(field, "must not be empty");
  if (v.length > maxLength) throw new BadUserInputError(field, `must be at most ${maxLength} characters`);
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(v)) throw new BadUserInputError(field, "must not contain control characters");
  return v;
}

export function optionalText(field: string, value: string | undefined | null, maxLength: number): string | undefined {
  if (value === undefined || value === null || value.trim() === "") return undefined;
  return checkText(field, value, maxLength);
}

export function checkFuture(field: string, value: Date, now: Date = new Date()): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw new BadUserInputError(field, "must be a date-time");
  if (value.getTime() <= now.getTime()) throw new BadUserInputError(field, "must be in the future");
  return value;
}

/** A billing interval (GraphQL checks the enum; REST and internal callers are checked here). */
export function checkInterval(field: string, value: unknown): BillingInterval {
  if (!Object.values(BillingInterval).includes(value as BillingInterval)) throw new BadUserInputError(field, "is not a billing interval");
  return value as BillingInterval;
}

export function checkIntervalCount(field: string, value: number | null | undefined): number {
  const n = value ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 366) throw new BadUserInputError(field, "must be a whole number from 1 to 366");
  return n;
}

/** Free-trial length in days: 0 (none) to a year. */
export function checkTrialDays(field: string, value: number | null | undefined): number {
  const n = value ?? 0;
  if (!Number.isInteger(n) || n < 0 || n > 365) throw new BadUserInputError(field, "must be a whole number of days from 0 to 365");
  return n;
}

const PLAN_CODE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** A plan's code: 1 to 64 letters, digits and _ . - (starting with a letter or digit). */
export function checkPlanCode(field: string, value: string): string {
  const v = value.trim();
  if (!PLAN_CODE.test(v)) throw new BadUserInputError(field, "must be 1 to 64 letters, digits, _ . or -, starting with a letter or digit");
  return v;
}
