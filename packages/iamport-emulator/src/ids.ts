import { randomBytes } from "node:crypto";

const DIGITS = "0123456789";
const ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz";

/** A random string over `alphabet` (tiny modulo bias is irrelevant for identifiers). */
export function randomString(length: number, alphabet = ALNUM): string {
  const bytes = randomBytes(length);
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[bytes[i] % alphabet.length];
  return out;
}

export const randomDigits = (length: number): string => randomString(length, DIGITS);

/** Billing-key (API) payments: `imps_` + 12 characters, as Iamport issues them. */
export const apiImpUid = (): string => `imps_${randomString(12)}`;

/** Browser (IMP.request_pay) payments: `imp_` + 12 digits. */
export const browserImpUid = (): string => `imp_${randomDigits(12)}`;

export const accessToken = (): string => randomBytes(20).toString("hex");

export const pgTid = (): string => `emul${randomDigits(16)}`;
