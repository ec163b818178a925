import fs from "node:fs";
import path from "node:path";
import querystring from "node:querystring";
import fc from "fast-check";
import {
  buildSchema,
  getNamedType,
  GraphQLArgument,
  GraphQLInputType,
  GraphQLObjectType,
  GraphQLSchema,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  Kind,
  parse,
} from "graphql";
import { API_KEY, Harness } from "../support/harness";

/**
 * Building blocks of test/security/fuzz.test.ts: hostile values, request
 * generators for every public route, the judge that decides whether an answer
 * is acceptable, state snapshots and the request counters.
 */

// ---------------------------------------------------------------------------------------------
// Values

/** JSON text sent as is (numbers JSON.stringify cannot write, deep nesting, duplicate or __proto__ keys). */
export class Raw {
  constructor(readonly text: string) {}
}

/** JSON writer that keeps Raw fragments and own "__proto__" keys, and never recurses into Raw nesting. */
export function toJson(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (v === undefined) return "null";
  if (Array.isArray(v)) return `[${v.map(toJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const parts = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${toJson(o[k])}`);
    return `{${parts.join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** Sets an own enumerable key, also for "__proto__" (an object literal would set the prototype instead). */
export function withKey<T extends Record<string, unknown>>(o: T, key: string, value: unknown): T {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  return o;
}

export const UID_RE = /^[A-Za-z0-9_\-.:@]+$/;

export const INJECTIONS: readonly string[] = [
  "'; drop table payments; --",
  "'; drop table cards; --",
  "' OR '1'='1",
  "1; select pg_sleep(10); --",
  "'||pg_sleep(10)||'",
  "$$; drop table subscriptions; $$",
  '{"$gt": ""}',
  '{"$ne": null}',
  '{"$where": "sleep(1000)"}',
  "${7*7}",
  "{{7*7}}",
  "#{7*7}",
  "<%= 7*7 %>",
  "${{<%[%'\"}}%\\.",
  "<script>alert(1)</script>",
  "javascript:alert(1)",
  "../../../etc/passwd",
  "..",
  ".",
  "...",
  "a:b@c",
  "%00",
  "%",
  "%zz",
  "\\u0000",
  "\u0000",
  "a\u0000b",
  "\u0000\u0000\u0000",
  "\u202e\u0644\u0627",
  "\u{1F600}\u{1F44D}\u{1F3FD}",
  "\u{1D54F}\u{1D550}",
  "\ud800",
  "\udfff\ud800",
  "\uFEFF",
  "\uFF21\uFF22",
  "\u180E",
  "\u0007\u0008",
  "\u007f",
  "\r\nX-Injected: 1",
  "\t\n\v\f\r ",
  "   ",
  "",
  "NaN",
  "Infinity",
  "-Infinity",
  "-0",
  "1e308",
  "0x1F",
  "9007199254740993",
  "null",
  "undefined",
  "true",
  "[]",
  "{}",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "\\",
  '"',
  "'",
  "`",
  "$",
  "@",
  "_",
];

/** Strings that checkUid refuses, whatever the field (non-empty after trimming, or only blanks). */
export const BAD_UID_STRINGS: readonly string[] = [
  "   ",
  "a b",
  "'; drop table payments; --",
  '{"$gt": ""}',
  "${7*7}",
  "{{7*7}}",
  "a\u0000b",
  "\u0000",
  "%00",
  "\u00fc",
  "\u{1F600}",
  "<script>",
  "a/b",
  "../x",
  "a\tb",
  "a\nb",
  "x".repeat(81),
  "\uFF21",
  "\ud800",
];

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64url");

/** Long strings: 1 KB to 100 KB (the last ones exceed the 100 KB body limit on purpose). */
export const hugeString: fc.Arbitrary<string> = fc
  .tuple(fc.constantFrom(1_000, 20_000, 60_000, 100_001), fc.constantFrom("A", "\u{1F600}", "\u0000", "'", "\u00fc", "%00", "a b"))
  .map(([n, c]) => c.repeat(Math.ceil(n / c.length)));

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...INJECTIONS) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom("\u0000", "\u0001", "\u001f", "\u007f", "a", "'", "\ud800", "\u{1F600}"), maxLength: 20 }) },
  { weight: 1, arbitrary: hugeString },
  { weight: 1, arbitrary: fc.integer({ min: 81, max: 300 }).map((n) => "u".repeat(n)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...INJECTIONS), fc.constantFrom(...INJECTIONS)).map(([a, b]) => a + b) },
);

export function deepArray(n: number): Raw {
  return new Raw("[".repeat(n) + "]".repeat(n));
}
export function deepObject(n: number): Raw {
  return new Raw('{"a":'.repeat(n) + "1" + "}".repeat(n));
}
export const PROTO_OBJECTS: readonly Raw[] = [
  new Raw('{"__proto__":{"polluted":"yes"}}'),
  new Raw('{"constructor":{"prototype":{"polluted":"yes"}}}'),
  new Raw('{"__proto__":{"__proto__":{"polluted":"yes"}},"a":1}'),
  new Raw('{"a":1,"a":2,"a":{"$gt":""}}'),
];

export const deepValue: fc.Arbitrary<Raw> = fc
  .tuple(fc.constantFrom(50, 500, 5_000, 20_000), fc.boolean())
  .map(([n, arr]) => (arr ? deepArray(n) : deepObject(n)));

/** Numbers a JSON writer would not produce, and numbers that are not 32-bit integers. */
export const hostileNumber: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    0,
    -1,
    1.5,
    1e308,
    -1e308,
    2 ** 31,
    -(2 ** 31) - 1,
    2 ** 53 + 2,
    Number.MAX_SAFE_INTEGER,
    5e-324,
    100_000_001,
    new Raw("-0"),
    new Raw("1e999"),
    new Raw("-1e999"),
    new Raw("123456789012345678901234567890"),
    new Raw("1.0"),
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Anything JSON can carry, hostile. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: hostileString },
  { weight: 2, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom(...INJECTIONS), { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>({ $gt: "" }, { $ne: null }, { toString: "x" }, {}) },
  { weight: 1, arbitrary: fc.constantFrom(...PROTO_OBJECTS) },
  { weight: 1, arbitrary: deepValue },
);

/** Not a string (GraphQL String refuses each of these). */
export const notAString: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.constantFrom<unknown>(1.5, 1e308, true, false, [], ["a", "b"], { $gt: "" }, { $ne: null }, new Raw("-0"), new Raw("1e999")),
  deepValue,
  fc.constantFrom(...PROTO_OBJECTS),
);

/** Non-empty values that checkUid refuses (or GraphQL refuses before it). */
export const badUid: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<unknown>(...BAD_UID_STRINGS) },
  { weight: 2, arbitrary: notAString },
  { weight: 1, arbitrary: hugeString },
  { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 30 }).filter((s) => !UID_RE.test(s.trim())) },
  { weight: 1, arbitrary: fc.integer({ min: 81, max: 200 }).map((n) => "m".repeat(n)) },
);
/** For required uids: also empty. */
export const badUidRequired: fc.Arbitrary<unknown> = fc.oneof(badUid, fc.constantFrom<unknown>("", " "));
/** merchantUid this server sends to Iamport: also 41 to 80 valid characters. */
export const badMerchantUid: fc.Arbitrary<unknown> = fc.oneof(badUid, fc.integer({ min: 41, max: 80 }).map((n) => "m".repeat(n)));

export const goodUid: fc.Arbitrary<string> = fc
  .tuple(fc.constantFrom("fz", "imps", "cust", "ord", "a.b", "x:y@z"), fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789_-"), minLength: 1, maxLength: 12 }))
  .map(([p, s]) => `${p}_${s}`);

/** Amounts checkAmount or GraphQL's Int refuse (MAX_AMOUNT is 100000000). */
export const badAmount: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(0, -1, -100, 100_000_001, 2 ** 31 - 1, 1.5, 1e308, -1e308, "100", "NaN", "", "1e3", true, [100], { $gt: 0 }),
  fc.constantFrom<unknown>(new Raw("-0"), new Raw("1e999"), new Raw("123456789012345678901234"), new Raw("0.5")),
  fc.integer({ min: -(2 ** 31), max: 0 }),
  deepValue,
);

/** Required text (checkText): empty, blank, control characters, too long, not a string. */
export function badText(max: number): fc.Arbitrary<unknown> {
  return fc.oneof(fc.constantFrom<unknown>("", "   ", "\t\n", "a\u0000b", "\u0007bell", "x\u001fy", "x".repeat(max + 1)), hugeString, notAString);
}
/** Optional text (optionalText): blanks are allowed there, so only control characters, length, type. */
export function badOptionalText(max: number): fc.Arbitrary<unknown> {
  return fc.oneof(fc.constantFrom<unknown>("a\u0000b", "\u0007bell", "x\u001fy", "\u0008", "x".repeat(max + 1)), hugeString, notAString);
}

/** Valid-looking text with hostile content (allowed by checkText). */
export const nastyButValidText: fc.Arbitrary<string> = fc.constantFrom(
  "Pro plan",
  "'; drop table payments; --",
  '{"$gt": ""}',
  "${7*7}",
  "{{7*7}}",
  "<script>alert(1)</script>",
  "\u{1F600} \uC6D4\uAC04 \uAD6C\uB3C5",
  "\u202e\u0644\u0627",
  "NaN",
);

const FUTURE = "2031-01-01T00:00:00+09:00";
/** DateTime values GraphQL or checkFuture refuse (none that could be a future date). */
export const badDate: fc.Arbitrary<unknown> = fc.constantFrom<unknown>(
  "2020-01-01T00:00:00Z",
  "1970-01-01T00:00:00Z",
  "not a date",
  "",
  "2031-13-01T00:00:00Z",
  "yesterday",
  "0000-00-00T00:00:00Z",
  0,
  -1,
  1.5,
  1e308,
  true,
  [FUTURE],
  { $gt: "" },
  "'; drop table payments; --",
  "a\u0000b",
);

export const badCardNumber: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>("4242-4242-4242-4241", "1234", "", "4242 4242 4242 424a", "\uFF14\uFF12\uFF14\uFF12424242424242", "4242-4242-4242-4242-4242", "'; drop table cards; --", "a\u0000b"),
  hugeString,
  notAString,
);
export const badExpiry: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>("2020-01", "2031-13", "2031-00", "31-12", "2031/12", "", "9999-12", "2031-1", "${7*7}", "2031-12\u0000"),
  notAString,
);
export const badBirth: fc.Arbitrary<unknown> = fc.oneof(fc.constantFrom<unknown>("12345", "1234567", "abcdef", "", "\uFF18\uFF18\uFF10\uFF11\uFF10\uFF11", "88010\u0000"), notAString);
export const badPwd2: fc.Arbitrary<unknown> = fc.oneof(fc.constantFrom<unknown>("1", "123", "ab", "1\u0000", "\uFF11\uFF12"), notAString);

// ---------------------------------------------------------------------------------------------
// Requests

export type Method = "GET" | "POST" | "PUT" | "DELETE" | "PATCH";

export interface FuzzRequest {
  category: string;
  /** Mutation/query name, route or transport variant, for the counts. */
  variant: string;
  method: Method;
  url: string;
  headers: Record<string, string>;
  body?: string;
  /** GraphQL: the operation is invalid by construction and must be refused (errors, no data for this field). */
  refusedField?: string;
  /** REST: the request is invalid by construction and must get a 4xx. */
  refused?: boolean;
}

/** What the server will see of a request, derived from its bytes (see finalize). */
export interface Facts {
  /** The payload carries a NUL character (raw, \u0000 escape or %00). */
  nul: boolean;
  /** GraphQL variables with an explicit `ttlSeconds: null`. */
  ttlNull: boolean;
  /** A GraphQL document with a `subscription` operation (the schema has none). */
  subscriptionOp: boolean;
  /** A GraphQL request with an automatic persisted query extension. */
  persistedQuery: boolean;
  /** imp_uids (trimmed) this request may legitimately record in webhook_events. */
  eventImpUids: string[];
  /** May record one webhook_events row without imp_uid (mobile redirect without imp_uid). */
  mayRecordBareEvent: boolean;
}

export const WEBHOOK_PATHS = ["/iamport-webhook", "/iamport-callback/schedule"];
export const MOBILE_PATH = "/payments/complete/mobile";

const gqlHeaders = (extra: Record<string, string> = {}): Record<string, string> => ({
  authorization: `Bearer ${API_KEY}`,
  "content-type": "application/json",
  ...extra,
});

export function gqlRequest(category: string, variant: string, query: unknown, variables?: unknown, extra: Partial<FuzzRequest> = {}): FuzzRequest {
  const payload: Record<string, unknown> = { query };
  if (variables !== undefined) payload.variables = variables;
  return { category, variant, method: "POST", url: "/graphql", headers: gqlHeaders(), body: toJson(payload), ...extra };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

function hasNul(s: string): boolean {
  const d = safeDecode(s);
  return [s, d].some((x) => x.includes("\u0000") || /\\u0000/i.test(x) || /%00/i.test(x));
}

function pathOf(url: string): string {
  return url.split("?")[0];
}

/** The fields a JSON or form body gives the server (both parses tried: a superset is safe here). */
function bodyValues(body: string | undefined, field: string): unknown[] {
  if (body === undefined || body === "") return [];
  const out: unknown[] = [];
  try {
    const parsed = JSON.parse(body) as unknown;
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
      const v = (parsed as Record<string, unknown>)[field];
      if (Object.prototype.hasOwnProperty.call(parsed, field)) out.push(v);
    }
  } catch {
    // not JSON
  }
  try {
    out.push(...new URLSearchParams(body).getAll(field));
  } catch {
    // not a form
  }
  return out;
}

export function finalize(req: FuzzRequest): Facts {
  const p = pathOf(req.url);
  const facts: Facts = { nul: hasNul(req.url) || hasNul(req.body ?? ""), ttlNull: false, subscriptionOp: false, persistedQuery: false, eventImpUids: [], mayRecordBareEvent: false };
  const strings = (vs: unknown[]) => vs.filter((v): v is string => typeof v === "string");
  if (req.method === "POST" && (WEBHOOK_PATHS.includes(p) || p === "/payments/complete")) {
    facts.eventImpUids = strings(bodyValues(req.body, "imp_uid")).map((s) => s.trim());
  }
  if (p === "/graphql") {
    const ops: { query?: unknown; variables?: unknown; extensions?: unknown }[] = [];
    try {
      const parsed = JSON.parse(req.body ?? "") as unknown;
      for (const op of Array.isArray(parsed) ? parsed : [parsed]) if (op !== null && typeof op === "object") ops.push(op as { query?: unknown });
    } catch {
      // not JSON
    }
    const query = new URLSearchParams(req.url.slice(req.url.indexOf("?") + 1)).get("query");
    if (req.url.includes("?") && query) ops.push({ query });
    for (const op of ops) {
      const vars = op.variables as Record<string, unknown> | null | undefined;
      if (vars !== null && typeof vars === "object" && Object.prototype.hasOwnProperty.call(vars, "ttlSeconds") && vars.ttlSeconds === null) facts.ttlNull = true;
      const ext = op.extensions as Record<string, unknown> | null | undefined;
      if (ext !== null && typeof ext === "object" && ext.persistedQuery !== undefined) facts.persistedQuery = true;
      if (typeof op.query === "string") {
        try {
          const doc = parse(op.query, { maxTokens: 5000, noLocation: true });
          if (doc.definitions.some((d) => d.kind === Kind.OPERATION_DEFINITION && d.operation === "subscription")) facts.subscriptionOp = true;
        } catch {
          // not a document
        }
      }
    }
  }
  if (req.method === "GET" && p === MOBILE_PATH) {
    const q = querystring.parse(req.url.slice(req.url.indexOf("?") + 1));
    const one = (k: string): string | undefined => {
      const v = q[k];
      return typeof v === "string" && v !== "" ? v.slice(0, 200) : undefined;
    };
    const imp = one("imp_uid");
    facts.mayRecordBareEvent = true;
    if (imp) facts.eventImpUids = [imp.trim()];
  }
  return facts;
}

/** UTF-8 percent-encoding of everything but unreserved characters (lone surrogates go as U+FFFD, as a browser sends them). */
export function pct(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    const c = String.fromCharCode(b);
    out += b < 128 && /[A-Za-z0-9_.~-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * An x-www-form-urlencoded body. Strings go as they are; anything else goes as
 * a repeated key, which the server parses as an array (never as a string that
 * could happen to be valid).
 */
export function formEncode(fields: [string, unknown][]): string {
  const parts: string[] = [];
  for (const [k, v] of fields) {
    if (v === undefined) continue;
    if (typeof v === "string") {
      parts.push(`${pct(k)}=${pct(v)}`);
      continue;
    }
    const items = Array.isArray(v) && v.length > 1 ? v : [v, v];
    for (const item of items) parts.push(`${pct(k)}=${pct(typeof item === "string" ? item : toJson(item))}`);
  }
  return parts.join("&");
}

// ---------------------------------------------------------------------------------------------
// Judging answers

export interface Outcome {
  status: number;
  text: string;
  json?: unknown;
  ms: number;
  /** No answer: timeout, reset, refused. */
  error?: string;
}

/**
 * Open bugs, each with a precise matcher in knownBug() and an `it.failing`
 * reproduction in fuzz.test.ts. None is open (BUG-1 to BUG-5 were fixed).
 */
export type BugId = never;

export const KNOWN_BUGS: Record<BugId, string> = {};

export type Verdict = { kind: "ok" } | { kind: "known"; bug: BugId; problem: string } | { kind: "violation"; problem: string };

interface GqlError {
  message?: unknown;
  path?: unknown[];
  extensions?: { code?: unknown };
}

function gqlErrors(json: unknown): GqlError[] {
  if (json === null || typeof json !== "object") return [];
  const errors = (json as { errors?: unknown }).errors;
  return Array.isArray(errors) ? (errors as GqlError[]) : [];
}

/**
 * A known, reported bug this answer matches precisely (route, input class and
 * answer), or undefined. None is open: BUG-1 to BUG-5 were fixed; a new finding
 * gets a precise matcher here and an \`it.failing\` reproduction until fixed.
 */
export function knownBug(_req: FuzzRequest, _facts: Facts, _out: Outcome): BugId | undefined {
  return undefined;
}

const LEAK = /node_modules|DriverException|\n\s+at \S+ \(?[^\n]*:\d+:\d+/;

export function judge(req: FuzzRequest, facts: Facts, out: Outcome): Verdict {
  if (out.error) return { kind: "violation", problem: `no answer (${out.error})` };
  const errors = gqlErrors(out.json);
  let problem: string | undefined;
  if (out.status >= 500) problem = `HTTP ${out.status}`;
  else if (errors.some((e) => e.extensions?.code === "INTERNAL_SERVER_ERROR")) problem = `INTERNAL_SERVER_ERROR in an HTTP ${out.status} answer`;
  else if (LEAK.test(out.text)) problem = "the answer shows internals (stack trace or driver error)";
  else if (req.refused && out.status < 400) problem = "an invalid request was accepted";
  else if (req.refusedField && out.status < 300) {
    const data = (out.json as { data?: Record<string, unknown> | null } | undefined)?.data;
    if (errors.length === 0 || (data && data[req.refusedField] != null)) problem = "an invalid operation was accepted";
  }
  if (!problem) return { kind: "ok" };
  const bug = knownBug(req, facts, out);
  return bug ? { kind: "known", bug, problem } : { kind: "violation", problem };
}

// ---------------------------------------------------------------------------------------------
// Sending

export async function send(h: Harness, req: FuzzRequest, timeoutMs = 15_000): Promise<Outcome> {
  const started = Date.now();
  try {
    const r = await h.http.request({
      method: req.method,
      url: req.url,
      headers: req.headers,
      data: req.body,
      timeout: timeoutMs,
      responseType: "text",
      transformRequest: [(d: unknown) => d],
      transformResponse: [(d: unknown) => d],
      maxBodyLength: Infinity,
      maxContentLength: Infinity,
    });
    const text = typeof r.data === "string" ? r.data : String(r.data ?? "");
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, text, json, ms: Date.now() - started };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { status: 0, text: "", ms: Date.now() - started, error: `${e.code ?? ""} ${e.message ?? String(err)}`.trim() };
  }
}

/** Runs tasks with at most `limit` in flight. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// ---------------------------------------------------------------------------------------------
// Counting

export interface CategoryCount {
  requests: number;
  "2xx": number;
  "3xx": number;
  "4xx": number;
  "5xx": number;
  noAnswer: number;
  knownBugHits: number;
  variants: Record<string, number>;
}

export class Counter {
  readonly categories: Record<string, CategoryCount> = {};
  readonly knownBugs: Record<string, number> = {};
  readonly started = Date.now();

  record(req: FuzzRequest, out: Outcome, verdict: Verdict): void {
    const c = (this.categories[req.category] ??= { requests: 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, noAnswer: 0, knownBugHits: 0, variants: {} });
    c.requests++;
    c.variants[req.variant] = (c.variants[req.variant] ?? 0) + 1;
    if (out.error) c.noAnswer++;
    else if (out.status >= 500) c["5xx"]++;
    else if (out.status >= 400) c["4xx"]++;
    else if (out.status >= 300) c["3xx"]++;
    else c["2xx"]++;
    if (verdict.kind === "known") {
      c.knownBugHits++;
      this.knownBugs[verdict.bug] = (this.knownBugs[verdict.bug] ?? 0) + 1;
    }
  }

  total(): number {
    return Object.values(this.categories).reduce((n, c) => n + c.requests, 0);
  }

  table(): string {
    const rows = Object.entries(this.categories).map(([name, c]) => [name, c.requests, c["2xx"], c["3xx"], c["4xx"], c["5xx"], c.noAnswer, c.knownBugHits]);
    rows.push(["TOTAL", this.total(), ...["2xx", "3xx", "4xx", "5xx", "noAnswer", "knownBugHits"].map((k) => Object.values(this.categories).reduce((n, c) => n + (c[k as keyof CategoryCount] as number), 0))]);
    const head = ["category", "requests", "2xx", "3xx", "4xx", "5xx", "no answer", "known-bug hits"];
    const all = [head, ...rows].map((r) => r.map(String));
    const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
    return all.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ")).join("\n");
  }

  write(file: string, extra: Record<string, unknown>): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const body = { ...extra, totalRequests: this.total(), durationMs: Date.now() - this.started, categories: this.categories, knownBugHits: this.knownBugs, knownBugs: KNOWN_BUGS };
    fs.writeFileSync(file, JSON.stringify(body, null, 2) + "\n");
  }
}

// ---------------------------------------------------------------------------------------------
// State

export interface Snapshot {
  digest: string;
  counts: { payments: number; cards: number; subscriptions: number };
  lastEventId: number;
  logLength: number;
}

export async function snapshot(h: Harness): Promise<Snapshot> {
  const payments = await h.sql(
    `select id, merchant_uid, imp_uid, customer_uid, status, amount, paid_amount, cancelled_amount, scheduled_at, subscription_id from payments order by id`,
  );
  const cards = await h.sql(`select id, customer_uid, status, deleted_at from cards order by id`);
  const subscriptions = await h.sql(
    `select id, customer_uid, status, amount, current_period, current_period_end, next_payment_at, next_merchant_uid, cancel_at_period_end, canceled_at from subscriptions order by id`,
  );
  const last = await h.sql<{ id: string | null }>(`select max(id) as id from webhook_events`);
  return {
    digest: JSON.stringify({ payments, cards, subscriptions }),
    counts: { payments: payments.length, cards: cards.length, subscriptions: subscriptions.length },
    lastEventId: Number(last[0]?.id ?? 0),
    logLength: h.logs.length,
  };
}

export function prototypeKeys(): string {
  return [Object, Array, String, Function]
    .map((C) => Object.getOwnPropertyNames(C.prototype).sort().join(","))
    .join("|");
}

export function short(s: string, n = 300): string {
  const one = JSON.stringify(s);
  return one.length > n ? `${one.slice(0, n)}… (${s.length} chars)` : one;
}

export function describeFailure(req: FuzzRequest, out: Outcome, problem: string): string {
  return [
    `${problem}: ${req.method} ${short(req.url, 200)} [${req.category}/${req.variant}]`,
    `  headers: ${short(JSON.stringify(req.headers), 200)}`,
    `  body: ${req.body === undefined ? "(none)" : short(req.body)}`,
    `  answer: ${out.error ? out.error : `HTTP ${out.status} ${short(out.text)}`}`,
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// Random GraphQL documents

/** Small deterministic PRNG (mulberry32) driven by a fast-check integer, so documents replay with the seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

let schemaCache: GraphQLSchema | undefined;
export function billingSchema(): GraphQLSchema {
  schemaCache ??= buildSchema(fs.readFileSync(path.resolve(__dirname, "../../schema.graphql"), "utf8"));
  return schemaCache;
}

/** A GraphQL string literal (JSON's escapes are GraphQL's). */
export function gqlString(s: string): string {
  return JSON.stringify(s);
}

export interface DocOptions {
  /** Values for String/ID arguments (seeded ids and hostile strings). */
  strings: readonly string[];
  cursors: readonly string[];
}

function literalFor(rng: Rng, type: GraphQLInputType, opts: DocOptions, depth = 0): string {
  if (isNonNullType(type)) return literalFor(rng, type.ofType, opts, depth);
  if (isListType(type)) {
    const n = rng.int(3);
    return `[${Array.from({ length: n }, () => literalFor(rng, type.ofType, opts, depth + 1)).join(", ")}]`;
  }
  const named = getNamedType(type);
  if (rng.chance(0.08)) return rng.pick(["null", "1.5", '"x"', "[1]", "{a: 1}", "$undefinedVariable", "true", "ENUM_VALUE"]);
  if (isEnumType(named)) return rng.chance(0.85) ? rng.pick(named.getValues()).name : rng.pick(["paid", "PAID_", '"PAID"', "null"]);
  if (isInputObjectType(named)) {
    if (depth > 3) return "{}";
    const fields = Object.values(named.getFields()).filter(() => rng.chance(0.6));
    return `{${fields.map((f) => `${f.name}: ${literalFor(rng, f.type, opts, depth + 1)}`).join(", ")}}`;
  }
  switch (named.name) {
    case "Int":
      return String(rng.pick([1, 5, 20, 100, 101, 0, -1, 2147483647, 2147483648, 99999999999]));
    case "Boolean":
      return rng.pick(["true", "false"]);
    case "DateTime":
      return gqlString(rng.pick([FUTURE, "2020-01-01T00:00:00Z", "garbage", ""]));
    default:
      return gqlString(rng.pick(opts.strings));
  }
}

function argsFor(rng: Rng, args: readonly GraphQLArgument[], opts: DocOptions): string {
  if (args.length === 0 || rng.chance(0.3)) return "";
  const chosen = args.filter(() => rng.chance(0.6));
  if (chosen.length === 0) return "";
  return `(${chosen
    .map((a) => `${a.name}: ${a.name === "after" && rng.chance(0.7) ? gqlString(rng.pick(opts.cursors)) : literalFor(rng, a.type, opts)}`)
    .join(", ")})`;
}

function selectionFor(rng: Rng, type: GraphQLObjectType, depth: number, maxDepth: number, opts: DocOptions, fragments: string[]): string {
  const fields = Object.values(type.getFields());
  const n = 1 + rng.int(Math.min(4, fields.length));
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const f = rng.pick(fields);
    let s = rng.chance(0.15) ? `a${rng.int(1000)}: ` : "";
    s += f.name + argsFor(rng, f.args, opts);
    const named = getNamedType(f.type);
    if (isObjectType(named)) {
      s += depth >= maxDepth ? " { __typename }" : ` { ${selectionFor(rng, named, depth + 1, maxDepth, opts, fragments)} }`;
    } else if (rng.chance(0.03)) {
      s += " { id }";
    }
    if (rng.chance(0.05)) s += ` @skip(if: ${rng.pick(["false", "true", "$nope", '"yes"'])})`;
    parts.push(s);
  }
  if (rng.chance(0.1)) parts.push("__typename");
  if (rng.chance(0.04)) parts.push(rng.pick(["nonExistingField", "cardNumber", "__schema { types { name } }", "password"]));
  if (rng.chance(0.1)) {
    const name = `F${fragments.length}`;
    const target = rng.chance(0.9) ? type.name : rng.pick(["Payment", "Subscription", "Card", "Query", "PageInfo"]);
    fragments.push(`fragment ${name} on ${target} { __typename }`);
    parts.push(`...${name}`);
  }
  if (rng.chance(0.05)) parts.push(`... on ${rng.pick(["Payment", "Subscription", "Card"])} { __typename }`);
  return parts.join(" ");
}

/** A random query document: random fields, arguments, aliases, fragments and depth (sometimes past the limits). */
export function randomQueryDocument(seed: number, opts: DocOptions): string {
  const rng = new Rng(seed);
  const schema = billingSchema();
  const fragments: string[] = [];
  const maxDepth = 1 + rng.int(12);
  const body = selectionFor(rng, schema.getQueryType()!, 0, maxDepth, opts, fragments);
  const head = rng.pick(["", "query ", "query Q ", "query Q($x: String) ", "query Q($x: Int = 1.5) "]);
  return `${head}{ ${body} } ${fragments.join(" ")}`;
}

/** A mutation document that GraphQL validation always refuses (required arguments missing or of the wrong kind). */
export function invalidMutationDocument(seed: number): string {
  const rng = new Rng(seed);
  const mutation = billingSchema().getMutationType()!;
  const f = rng.pick(Object.values(mutation.getFields()));
  const args = rng.pick(["", "(unknownArgument: 1)", "(input: 123)", '(input: "{}")', "(input: [])", "(input: null)"]);
  const required = f.args.filter((a) => isNonNullType(a.type) && a.defaultValue === undefined).map((a) => a.name);
  // `input: ...` literals above are invalid for every input type; for mutations without `input`, omit the required args.
  const usable = required.includes("input") ? args : args.startsWith("(input") ? "" : args;
  const named = getNamedType(f.type);
  const selection = isObjectType(named) ? ` { ${Object.keys(named.getFields())[0]} }` : "";
  return `mutation { ${f.name}${usable}${selection} }`;
}

export { b64 };
