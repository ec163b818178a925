import net from "node:net";
import type { NextFunction, Request, Response } from "express";
import rateLimit, { ipKeyGenerator, Store } from "express-rate-limit";
import type { Caller } from "../graphql/context";
import { callerKey } from "./auth";

/** A limit of 0 turns the limiter off: nothing is mounted (no per-request cost). */
export const passThrough = (_req: Request, _res: Response, next: NextFunction): void => next();

/**
 * Per-caller (API key or customer token) limit on /graphql, answered the way
 * GraphQL clients read errors. `store` undefined: in memory (one process).
 */
export function graphqlRateLimit(perMinute: number, store?: Store) {
  if (perMinute === 0) return passThrough;
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    store,
    keyGenerator: (req, res) => callerKey(res.locals.caller as Caller | undefined) ?? `ip:${ipKeyGenerator(req.ip ?? "")}`,
    handler: (_req, res) => {
      res.status(429).json({ errors: [{ message: "Too many requests: slow down and retry later", extensions: { code: "RATE_LIMITED" } }] });
    },
  });
}

/** Per-IP limit on public routes (REST, and /graphql before authentication). */
export function ipRateLimit(perMinute: number, prefix: string, store?: Store) {
  if (perMinute === 0) return passThrough;
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    store,
    keyGenerator: (req) => `${prefix}:${ipKeyGenerator(req.ip ?? "")}`,
    handler: (_req, res) => {
      res.status(429).json({ status: "failed", code: "RATE_LIMITED", message: "Too many requests: slow down and retry later" });
    },
  });
}

/** Parses "52.78.100.19, 10.0.0.0/8, ::1" into a BlockList; throws on a bad entry. */
export function parseAllowList(entries: string[]): net.BlockList {
  const list = new net.BlockList();
  for (const raw of entries) {
    const [addr, bits] = raw.split("/");
    const type = net.isIPv6(addr) ? "ipv6" : "ipv4";
    if (!net.isIP(addr)) throw new Error(`"${raw}" is not an IP address or subnet`);
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

/** Webhook allow-list (WEBHOOK_ALLOWED_IPS): other sources get 403. Off when the list is empty. */
export function webhookAllowList(entries: string[]) {
  if (entries.length === 0) return (_req: Request, _res: Response, next: NextFunction) => next();
  const list = parseAllowList(entries);
  return (req: Request, res: Response, next: NextFunction) => {
    let ip = req.ip ?? "";
    if (ip.startsWith("::ffff:")) ip = ip.slice(7);
    const allowed = net.isIP(ip) !== 0 && list.check(ip, net.isIPv6(ip) ? "ipv6" : "ipv4");
    if (!allowed) {
      req.ctx?.log.warn({ ip }, "webhook from an address outside WEBHOOK_ALLOWED_IPS refused");
      res.status(403).json({ status: "failed", code: "FORBIDDEN", message: "This source may not send webhooks" });
      return;
    }
    next();
  };
}

type Connect = (req: never, res: never, next: (err?: unknown) => void) => void;

/**
 * Helmet with static options sets the same headers on every response, through
 * thirteen middlewares: recorded once here and replayed (they were ~3% of a
 * GraphQL read's CPU: bench/README.md). Recorded twice, for two different
 * requests; if the recordings differ (a directive computed per request, such as
 * a CSP nonce), or a middleware reads the request or does more than set and
 * remove headers, the middleware itself is returned.
 */
export function precomputedHeaders<M extends Connect>(mw: M): M {
  const record = (method: string, url: string, headers: Record<string, string>): string | null => {
    const ops: [string, string, unknown][] = [];
    let nexted = false;
    let other = false;
    const res = new Proxy(
      {
        setHeader: (name: string, value: unknown) => void ops.push(["set", name.toLowerCase(), value]),
        removeHeader: (name: string) => void ops.push(["remove", name.toLowerCase(), null]),
      },
      {
        get(target, prop) {
          if (prop in target) return target[prop as keyof typeof target];
          other = true;
          return undefined;
        },
      },
    );
    // Anything read from the request makes the headers the request's own.
    const touched = () => {
      other = true;
    };
    const req = new Proxy(
      { method, url, headers },
      {
        get(target, prop) {
          touched();
          return target[prop as keyof typeof target];
        },
        has(target, prop) {
          touched();
          return prop in target;
        },
        ownKeys(target) {
          touched();
          return Reflect.ownKeys(target);
        },
      },
    );
    try {
      (mw as unknown as (q: unknown, s: unknown, n: (err?: unknown) => void) => void)(req, res, (err) => {
        if (!err) nexted = true;
      });
    } catch {
      return null;
    }
    return nexted && !other ? JSON.stringify(ops) : null;
  };
  const a = record("POST", "/graphql", { "content-type": "application/json" });
  const b = record("GET", "/graphiql?x=1", { "user-agent": "x", "x-forwarded-proto": "https" });
  if (a === null || a !== b) return mw;
  // Replayed in the recorded order (a remove then a set of one header must leave it set).
  const ops = JSON.parse(a) as ["set" | "remove", string, unknown][];
  const replay = (_req: unknown, res: { setHeader(n: string, v: unknown): void; removeHeader(n: string): void }, next: () => void) => {
    for (const [op, name, value] of ops) {
      if (op === "set") res.setHeader(name, value);
      else res.removeHeader(name);
    }
    next();
  };
  return replay as unknown as M;
}
