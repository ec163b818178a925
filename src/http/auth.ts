import crypto from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { UnauthenticatedError } from "../errors";
import type { Caller } from "../graphql/context";
import { looksLikeJwt, verifyCustomerToken } from "../security/customer-token";

/** A configured key: plain, or `sha256:<hex>` so deployments need not keep plain keys. */
interface KeyEntry {
  id: string;
  digest: Buffer;
}

/** One-shot: no Hash object per request (the key check runs on every /graphql call). */
function sha256(s: string): Buffer {
  return crypto.hash("sha256", s, "buffer");
}

export function parseApiKeys(keys: string[]): KeyEntry[] {
  return keys.map((k, i) => {
    const m = /^sha256:([0-9a-fA-F]{64})$/.exec(k);
    return { id: `key${i + 1}`, digest: m ? Buffer.from(m[1], "hex") : sha256(k) };
  });
}

export interface Authenticator {
  keys: KeyEntry[];
  customerTokenSecret: string;
}

/** Merchant key (digests compared in constant time) or customer token; null when neither. */
export function authenticate(auth: Authenticator, header: string | undefined): Caller | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!m) return null;
  const presented = m[1];
  const digest = sha256(presented);
  let found: KeyEntry | null = null;
  for (const e of auth.keys) if (crypto.timingSafeEqual(e.digest, digest)) found = e;
  if (found) return { kind: "merchant", keyId: found.id };
  return customerCaller(auth, presented);
}

function customerCaller(auth: Authenticator, presented: string): Caller | null {
  if (!looksLikeJwt(presented)) return null;
  const claims = verifyCustomerToken(auth.customerTokenSecret, presented);
  return claims ? { kind: "customer", customerUid: claims.customerUid } : null;
}

/**
 * The caller of a REST card route: the Authorization header when one is sent
 * (a merchant key or a customer token, as on /graphql), otherwise the
 * `customer_token` field of the body, for a plain HTML form that cannot set
 * headers. That field takes customer tokens only: a merchant key never belongs
 * in a page. UNAUTHENTICATED when neither is valid.
 */
export function restCaller(auth: Authenticator, header: string | undefined, formToken: unknown): Caller {
  const caller =
    header ? authenticate(auth, header) : typeof formToken === "string" && formToken !== "" ? customerCaller(auth, formToken.trim()) : null;
  if (!caller) {
    throw new UnauthenticatedError(
      "A merchant API key or a customer token for this customer is required: send Authorization: Bearer <key or token>, or the form field customer_token",
    );
  }
  return caller;
}

const UNAUTHENTICATED = JSON.stringify({
  errors: [{ message: "A valid API key or customer token is required: send Authorization: Bearer <key>", extensions: { code: "UNAUTHENTICATED" } }],
});

/**
 * The /graphql guard: the caller (merchant key or customer token) is kept in
 * request.caller; without a valid one, 401 as GraphQL answers it
 * (UNAUTHENTICATED). CORS preflights never reach it (the CORS hook answers them).
 */
export function requireCaller(auth: Authenticator) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const caller = authenticate(auth, req.headers.authorization);
    if (caller) {
      req.caller = caller;
      return;
    }
    return reply.code(401).type("application/json; charset=utf-8").send(UNAUTHENTICATED);
  };
}

/** Key for per-caller rate limits: the key id or the token's customer, never the secret itself. */
export function callerKey(caller: Caller | undefined): string | undefined {
  if (!caller) return undefined;
  return caller.kind === "merchant" ? `merchant:${caller.keyId}` : `customer:${caller.customerUid}`;
}
