import { checkUid } from "../billing/validation";
import { BadUserInputError } from "../errors";
import { mintCustomerToken } from "./customer-token";

/** Mints customer tokens for merchant backends (createCustomerToken). */
export class CustomerTokenService {
  constructor(
    private readonly secret: string,
    private readonly maxTtlSeconds: number,
  ) {}

  mint(customerUidRaw: string, ttlSeconds: number): { token: string; customerUid: string; expiresAt: Date } {
    const customerUid = checkUid("customerUid", customerUidRaw);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 30 || ttlSeconds > this.maxTtlSeconds) {
      throw new BadUserInputError("ttlSeconds", `must be a whole number of seconds from 30 to ${this.maxTtlSeconds}`);
    }
    const now = Math.floor(Date.now() / 1000);
    return { token: mintCustomerToken(this.secret, customerUid, ttlSeconds, now), customerUid, expiresAt: new Date((now + ttlSeconds) * 1000) };
  }
}
