import crypto from "node:crypto";

/**
 * Customer tokens: HS256 JWTs minted by a merchant backend (createCustomerToken)
 * that let a merchant's app act for ONE customerUid. Verified here with a
 * constant-time signature check, the algorithm pinned to HS256, and expiry.
 */
export interface CustomerClaims {
  customerUid: string;
  expiresAt: number;
}

const HEADER = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");

function sign(secret: string, data: string): Buffer {
  return crypto.createHmac("sha256", secret).update(data).digest();
}

export function mintCustomerToken(secret: string, customerUid: string, ttlSeconds: number, nowSeconds = Math.floor(Date.now() / 1000)): string {
  const payload = Buffer.from(
    JSON.stringify({ sub: customerUid, typ: "customer", iat: nowSeconds, exp: nowSeconds + ttlSeconds }),
  ).toString("base64url");
  const data = `${HEADER}.${payload}`;
  return `${data}.${sign(secret, data).toString("base64url")}`;
}

/** The claims of a valid, unexpired token; null for anything else (malformed, forged, expired, other alg). */
export function verifyCustomerToken(secret: string, token: string, nowSeconds = Math.floor(Date.now() / 1000)): CustomerClaims | null {
  if (token.length > 2048) return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const [h, p, s] = parts;
  const expected = sign(secret, `${h}.${p}`);
  const given = Buffer.from(s, "base64url");
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
  try {
    const header = JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
    if (header?.alg !== "HS256") return null;
    const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
    if (claims?.typ !== "customer" || typeof claims.sub !== "string" || typeof claims.exp !== "number") return null;
    if (claims.exp <= nowSeconds) return null;
    return { customerUid: claims.sub, expiresAt: claims.exp };
  } catch {
    return null;
  }
}

export function looksLikeJwt(s: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(s);
}
