import net from "node:net";
import fastifyHelmet, { type FastifyHelmetOptions } from "@fastify/helmet";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { normalizeIP } from "@fastify/rate-limit";
import { callerKey } from "./auth";

/** A guard: a Fastify hook that answers (and the request stops there) or returns to let it through. */
export type Guard = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** The body of a 429 for its route: GraphQL clients read `errors`, REST clients `status`/`code`. */
type LimitAnswer = "graphql" | "rest";

const LIMITED_MESSAGE = "Too many requests: slow down and retry later";

/**
 * A limit of `perMinute` requests per key and window, counted by
 * @fastify/rate-limit's store (in memory, or PostgreSQL: rate-limit-store.ts).
 * Answers 429 with the RateLimit headers of the IETF draft; a limit of 0 is
 * no guard at all (nothing runs per request).
 */
function limiter(app: FastifyInstance, perMinute: number, keyOf: (req: FastifyRequest) => string, answer: LimitAnswer): Guard | undefined {
  if (perMinute === 0) return undefined;
  const check = app.createRateLimit({ max: perMinute, timeWindow: 60_000, keyGenerator: keyOf });
  return async (req, reply) => {
    const r = await check(req);
    if (r.isAllowed) return;
    reply.header("ratelimit-limit", r.max).header("ratelimit-remaining", r.remaining).header("ratelimit-reset", r.ttlInSeconds);
    if (!r.isExceeded) return;
    reply.header("retry-after", r.ttlInSeconds).code(429);
    return reply.send(
      answer === "graphql"
        ? { errors: [{ message: LIMITED_MESSAGE, extensions: { code: "RATE_LIMITED" } }] }
        : { status: "failed", code: "RATE_LIMITED", message: LIMITED_MESSAGE },
    );
  };
}

/** An IPv6 caller counts as its /56: one customer network is routinely given a whole /56. */
const ipKey = (req: FastifyRequest) => normalizeIP(req.ip ?? "", 56);

/** Per-IP limit on public routes (REST, webhooks, and /graphql before authentication). */
export function ipRateLimit(app: FastifyInstance, perMinute: number, prefix: string): Guard | undefined {
  return limiter(app, perMinute, (req) => `${prefix}:${ipKey(req)}`, "rest");
}

/** Per-caller (API key or customer token) limit on /graphql, after authentication, answered as GraphQL errors. */
export function callerRateLimit(app: FastifyInstance, perMinute: number): Guard | undefined {
  return limiter(app, perMinute, (req) => callerKey(req.caller) ?? `ip:${ipKey(req)}`, "graphql");
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

/** Webhook allow-list (WEBHOOK_ALLOWED_IPS): other sources get 403. No guard when the list is empty. */
export function webhookAllowList(entries: string[]): Guard | undefined {
  if (entries.length === 0) return undefined;
  const list = parseAllowList(entries);
  return async (req, reply) => {
    let ip = req.ip ?? "";
    if (ip.startsWith("::ffff:")) ip = ip.slice(7);
    const allowed = net.isIP(ip) !== 0 && list.check(ip, net.isIPv6(ip) ? "ipv6" : "ipv4");
    if (allowed) return;
    req.ctx.log.warn({ ip }, "webhook from an address outside WEBHOOK_ALLOWED_IPS refused");
    return reply.code(403).send({ status: "failed", code: "FORBIDDEN", message: "This source may not send webhooks" });
  };
}

/**
 * The security headers @fastify/helmet sends for `options`, computed once.
 * Without CSP nonces they are the same on every response, but the plugin
 * builds helmet's middleware again for every request (and adds two hooks);
 * so helmet answers one request of a bare instance at start, and the headers
 * it added are what the server's own request hook sets on every response.
 */
export async function securityHeaders(options: FastifyHelmetOptions): Promise<Record<string, string>> {
  const answer = async (withHelmet: boolean) => {
    const probe = Fastify({ logger: false });
    if (withHelmet) await probe.register(fastifyHelmet, options);
    probe.get("/", (_req, reply) => reply.send(""));
    const res = await probe.inject({ method: "GET", url: "/" });
    await probe.close();
    return res.headers;
  };
  const [secured, bare] = [await answer(true), await answer(false)];
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(secured)) if (!(name in bare) && typeof value === "string") headers[name] = value;
  return headers;
}
