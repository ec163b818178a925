import crypto from "node:crypto";
import type { NextFunction, Request, Response } from "express";
import type { Caller } from "../graphql/context";

/** A configured key: plain, or `sha256:<hex>` so deployments need not keep plain keys. */
interface KeyEntry {
  id: string;
  digest: Buffer;
}

function sha256(s: string): Buffer {
  return crypto.createHash("sha256").update(s, "utf8").digest();
}

export function parseApiKeys(keys: string[]): KeyEntry[] {
  return keys.map((k, i) => {
    const m = /^sha256:([0-9a-fA-F]{64})$/.exec(k);
    return { id: `key${i + 1}`, digest: m ? Buffer.from(m[1], "hex") : sha256(k) };
  });
}

/** Compares digests in constant time against every key, whichever matches. */
export function authenticate(entries: KeyEntry[], header: string | undefined): Caller | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!m) return null;
  const digest = sha256(m[1]);
  let found: KeyEntry | null = null;
  for (const e of entries) if (crypto.timingSafeEqual(e.digest, digest)) found = e;
  return found ? { kind: "merchant", keyId: found.id } : null;
}

/** Refuses /graphql without a valid key, answering as GraphQL would (UNAUTHENTICATED). */
export function requireApiKey(entries: KeyEntry[]) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method === "OPTIONS") return next();
    const caller = authenticate(entries, req.headers.authorization);
    if (!caller) {
      res.status(401).json({
        errors: [{ message: "A valid API key is required: send Authorization: Bearer <key>", extensions: { code: "UNAUTHENTICATED" } }],
      });
      return;
    }
    res.locals.caller = caller;
    next();
  };
}
