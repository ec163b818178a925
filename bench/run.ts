/**
 * `npm run bench [-- --quick] [--burst N] [--warmup-renewals N] [--burst-rounds R] [--cases renewal,startAt,decline,duplicates]
 *   [--rows N] [--duration S] [--rounds R] [--connections C] [--latency MS] [--webhook-concurrency N] [--pool N]
 *   [--only read,burst,latency,scale,events] [--profile DIR] [--json FILE]`
 *
 * Measures this server beside a reference measured in the same run, on the
 * same machine and database server, and prints one table (bench/README.md):
 *   1. GraphQL reads (payment, payments) vs a raw node:http + pg server, with
 *      the framework's floor beside them (Apollo + graphql-js around the same SQL);
 *   2. bursts of charges due at once, each case beside the plainly written
 *      schedule webhook handler: renewals paid, first charges scheduled with
 *      startAt, renewals declined softly, every webhook delivered three times;
 *   3. the paid renewals with 50 ms added to every Iamport call, against the
 *      delivery limit;
 *   4. the reads with 1,000,000 payments in the table vs a small table;
 *   5. the paid renewals with one webhook endpoint registered vs without one.
 * The server is driven only through its public surfaces (GraphQL, its webhook
 * route, /metrics) and its tables (SQL for setup checks and counting), and the
 * emulator only through its HTTP APIs (bench/emulator-child.ts starts it).
 * Writes bench/results.json. Exits 1 when something crashed or a charge was
 * lost or doubled; timings are figures, never fatal.
 */
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { openBenchDb, type BenchDb } from "./lib/db";
import { forEachLimit, httpJson, sleep } from "./lib/http";
import { load, type LoadResult } from "./lib/load";
import { cpuTimesOf, freePort, loadAverage, memoryOf, sampleMemory, startChild, stopAllChildren, childTails, waitHttpOk, type Child } from "./lib/proc";

const API_KEY = "bench-merchant-key";
const IMP_KEY = "imp_apikey";
const IMP_SECRET = "emulator_secret";
const DIST = path.join(__dirname, "..");
const PERIOD_SECONDS = 86400;
const CARD = { cardNumber: "4242-4242-4242-4242", expiry: "2031-12", birth: "880101", pwd2digit: "12" };

// ---- options ------------------------------------------------------------------

/** The burst cases of part 2, in the order they run. */
const CASE_KEYS = ["renewal", "startAt", "decline", "duplicates"] as const;
type CaseKey = (typeof CASE_KEYS)[number];

const { values: argv } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    burst: { type: "string" },
    "warmup-renewals": { type: "string" },
    "burst-rounds": { type: "string" },
    cases: { type: "string" },
    rows: { type: "string" },
    duration: { type: "string" },
    rounds: { type: "string" },
    connections: { type: "string", default: "32" },
    latency: { type: "string", default: "50" },
    "webhook-concurrency": { type: "string", default: "16" },
    pool: { type: "string", default: "20" },
    only: { type: "string" },
    profile: { type: "string" },
    json: { type: "string", default: path.join(__dirname, "..", "..", "bench", "results.json") },
  },
  strict: true,
});

const quick = argv.quick;
const opts = {
  quick,
  burst: intArg("burst", argv.burst, quick ? 50 : 1000),
  /**
   * Renewals run just before each measured burst, by the same processes (server or seed handler, and
   * emulator): a server on the 1st of the month has been running, so the burst measures code the JIT
   * has compiled, as the read measurements do after their warm-up. Default: a fifth of the burst, at most 200.
   */
  warmupRenewals: intArg("warmup-renewals", argv["warmup-renewals"], Math.min(200, Math.ceil(intArg("burst", argv.burst, quick ? 50 : 1000) / 5))),
  rows: intArg("rows", argv.rows, quick ? 50_000 : 1_000_000),
  durationSeconds: intArg("duration", argv.duration, quick ? 5 : 10),
  /** Alternating rounds of each read measurement (the figure is their median). */
  rounds: intArg("rounds", argv.rounds, quick ? 1 : 3),
  /** Alternating rounds of each burst (server, seed handler, server, ...): the figure is the median round. */
  burstRounds: Math.max(1, intArg("burst-rounds", argv["burst-rounds"], quick ? 1 : 5)),
  /** The burst cases of part 2 (part 3 runs the paid renewals). */
  cases: (argv.cases ?? CASE_KEYS.join(",")).split(",").map((s) => s.trim()) as CaseKey[],
  warmupSeconds: quick ? 1 : 3,
  connections: intArg("connections", argv.connections, 32),
  latencyMs: intArg("latency", argv.latency, 50),
  webhookConcurrency: intArg("webhook-concurrency", argv["webhook-concurrency"], 16),
  /** DATABASE_POOL_MAX of the server, the raw server and the seed handler: the server's default, 20 (the embedded database: always 1). */
  pool: intArg("pool", argv.pool, 20),
  phases: new Set((argv.only ?? "read,burst,latency,scale,events").split(",").map((s) => s.trim())),
  profileDir: argv.profile ? path.resolve(argv.profile) : undefined,
};
for (const p of opts.phases) if (!["read", "burst", "latency", "scale", "events"].includes(p)) throw new Error(`--only: unknown phase ${p}`);
for (const c of opts.cases) if (!(CASE_KEYS as readonly string[]).includes(c)) throw new Error(`--cases: unknown case ${c}`);

function intArg(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number (got ${raw})`);
  return n;
}

const log = (msg: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

// ---- processes ------------------------------------------------------------------

interface Emulator {
  child: Child;
  url: string;
  /** Where emulator-child.ts answers its count of Iamport calls. */
  statsUrl: string;
}

let emulatorsStarted = 0;

/** With --profile, the emulators run under `node --cpu-prof` too (DIR/emulator-N.cpuprofile, setup included). */
async function startEmulator(latencyMs: number): Promise<Emulator> {
  emulatorsStarted += 1;
  const child = startChild(`emulator (latency ${latencyMs} ms)`, path.join(__dirname, "emulator-child.js"), {
    nodeArgs: opts.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.profileDir}`, `--cpu-prof-name=emulator-${emulatorsStarted}.cpuprofile`] : [],
    args: [JSON.stringify({ latencyMs, webhookConcurrency: opts.webhookConcurrency, apiKey: IMP_KEY, apiSecret: IMP_SECRET })],
  });
  const m = await child.waitForLine(/^READY (.*)$/, 30_000);
  const ready = JSON.parse(m[1]) as { url: string; statsUrl: string };
  return { child, url: ready.url, statsUrl: ready.statsUrl };
}

interface Server {
  child: Child;
  url: string;
}

/** `profileName`: with --profile, the server runs under `node --cpu-prof` and writes DIR/profileName.cpuprofile. */
async function startBillingServer(db: BenchDb, emulator: Emulator, profileName: string | null, samePortAs?: Server): Promise<Server> {
  await db.waitIdle();
  // The schedules carry PUBLIC_URL as notice_url: a restarted server must keep its port.
  const port = samePortAs ? Number(new URL(samePortAs.url).port) : await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = startChild("billing server", path.join(DIST, "main.js"), {
    nodeArgs: [
      ...(process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
      ...(opts.profileDir && profileName ? ["--cpu-prof", `--cpu-prof-dir=${opts.profileDir}`, `--cpu-prof-name=${profileName}.cpuprofile`] : []),
    ],
    env: {
      NODE_ENV: "production",
      PORT: String(port),
      HOST: "127.0.0.1",
      PUBLIC_URL: url,
      DATABASE_URL: db.url,
      DATABASE_POOL_MAX: String(db.poolMax),
      API_KEYS: API_KEY,
      CUSTOMER_TOKEN_SECRET: "bench-customer-token-secret-0123456789abcdef",
      IAMPORT_API_URL: emulator.url,
      IAMPORT_API_KEY: IMP_KEY,
      IAMPORT_API_SECRET: IMP_SECRET,
      RATE_LIMIT_PER_MINUTE: "1000000",
      RATE_LIMIT_PUBLIC_PER_MINUTE: "1000000",
      LOG_LEVEL: "warn",
      RECONCILE_INTERVAL_SECONDS: "0",
      MIGRATE_ON_START: "true",
      TEST_DATABASE_URL: undefined,
      // The events part's webhook endpoint is the bench's own receiver on 127.0.0.1.
      WEBHOOK_ALLOW_PRIVATE_URLS: "true",
    },
  });
  await waitHttpOk(`${url}/healthz`, child, 60_000);
  return { child, url };
}

/** `apollo`: the framework's floor, the same server with Apollo + graphql-js around the same queries (raw-server.ts). */
async function startRawServer(db: BenchDb, kind: "raw" | "apollo" = "raw"): Promise<Server> {
  await db.waitIdle();
  const child = startChild(kind === "raw" ? "raw node:http + pg" : "Apollo + graphql-js floor", path.join(__dirname, "raw-server.js"), {
    env: { PORT: "0", DATABASE_URL: db.url, DATABASE_POOL_MAX: String(db.poolMax), API_KEY, READ_SERVER: kind },
  });
  const m = await child.waitForLine(/^READY (.*)$/, 30_000);
  const url = `http://127.0.0.1:${(JSON.parse(m[1]) as { port: number }).port}`;
  await waitHttpOk(`${url}/healthz`, child, 10_000);
  return { child, url };
}

async function startSeedHandler(db: BenchDb, emulator: Emulator): Promise<Server> {
  await db.waitIdle();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = startChild("seed handler", path.join(__dirname, "seed-handler.js"), {
    env: {
      PORT: String(port),
      DATABASE_URL: db.url,
      DATABASE_POOL_MAX: String(db.poolMax),
      IAMPORT_API_URL: emulator.url,
      IAMPORT_API_KEY: IMP_KEY,
      IAMPORT_API_SECRET: IMP_SECRET,
      NOTICE_URL: `${url}/iamport-callback/schedule`,
      PERIOD_SECONDS: String(PERIOD_SECONDS),
      // The server's first renewal retry comes a day after a decline (RETRY_SCHEDULE's default, 1d).
      RETRY_DELAY_SECONDS: String(86400),
    },
  });
  await waitHttpOk(`${url}/healthz`, child, 30_000);
  return { child, url };
}

// ---- GraphQL and Iamport calls ------------------------------------------------------

async function gql<T>(url: string, query: string, variables: Record<string, unknown>): Promise<T> {
  const r = await httpJson<{ data?: T; errors?: { message: string }[] }>("POST", `${url}/graphql`, { query, variables }, {
    headers: { authorization: `Bearer ${API_KEY}` },
    timeoutMs: 60_000,
  });
  if (r.status !== 200 || r.body?.errors?.length || !r.body?.data) throw new Error(`GraphQL answered ${r.status}: ${JSON.stringify(r.body).slice(0, 400)}`);
  return r.body.data;
}

const REGISTER_CARD = `mutation Register($input: RegisterCardInput!) { registerCard(input: $input) { customerUid status } }`;
const START_SUBSCRIPTION = `mutation Start($input: StartSubscriptionInput!) { startSubscription(input: $input) { id status statusReason nextPaymentAt } }`;
const PAYMENT_QUERY = `query Payment($merchantUid: String!) { payment(merchantUid: $merchantUid) { merchantUid impUid customerUid name amount paidAmount cancelledAmount currency status failReason scheduledAt paidAt createdAt updatedAt } }`;
const PAYMENTS_QUERY = `query Payments($customerUid: String!) { payments(customerUid: $customerUid, first: 20) { nodes { merchantUid impUid customerUid name amount paidAmount cancelledAmount currency status failReason scheduledAt paidAt createdAt updatedAt } pageInfo { hasNextPage endCursor } } }`;

async function iamport<T>(emulator: Emulator, method: string, route: string, token: string | null, body?: unknown): Promise<T> {
  const r = await httpJson<{ code: number; message: string | null; response: T }>(method, `${emulator.url}${route}`, body, {
    headers: token ? { authorization: token } : {},
    timeoutMs: 60_000,
  });
  if (r.status !== 200 || r.body?.code !== 0) throw new Error(`Iamport ${method} ${route} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
  return r.body.response;
}

async function iamportToken(emulator: Emulator): Promise<string> {
  return (await iamport<{ access_token: string }>(emulator, "POST", "/users/getToken", null, { imp_key: IMP_KEY, imp_secret: IMP_SECRET })).access_token;
}

async function emulatorNow(emulator: Emulator): Promise<number> {
  const r = await httpJson<{ now: number }>("GET", `${emulator.url}/__emulator/clock`);
  return r.body.now;
}

interface WireSchedule {
  customer_uid: string;
  merchant_uid: string;
  schedule_status: string;
  payment_status: string | null;
}

async function listSchedules(emulator: Emulator, status: "scheduled" | "executed"): Promise<WireSchedule[]> {
  const token = await iamportToken(emulator);
  const now = await emulatorNow(emulator);
  const all: WireSchedule[] = [];
  // Iamport lists schedules at most three months at a time: two years around its clock, window by window.
  const window = 89 * 86400;
  for (let from = now - 365 * 86400; from < now + 365 * 86400; from += window) {
    for (let page = 1; ; page++) {
      const r = await iamport<{ list: WireSchedule[] }>(
        emulator,
        "GET",
        `/subscribe/payments/schedule?schedule_from=${from}&schedule_to=${from + window}&schedule_status=${status}&limit=1000&page=${page}`,
        token,
      );
      all.push(...r.list);
      if (r.list.length < 1000) break;
    }
  }
  return all;
}

// ---- 1 and 4: reads -----------------------------------------------------------------------

/**
 * A server that has written something through the ORM, as one in service has, before its reads are
 * measured: whatever a flush or transaction leaves behind in the process is paid by the reads (on
 * Node 20, MikroORM's first transaction leaves an async_hooks init hook on every promise: change 22
 * in bench/README.md).
 */
async function asInService(server: Server): Promise<void> {
  await gql(server.url, REGISTER_CARD, { input: { customerUid: `svc_${process.pid}_${server.url.split(":").pop()}`, ...CARD } });
}

interface ReadKeys {
  merchantUids: string[];
  customers: string[];
}

interface ReadFigures {
  payment: LoadResult;
  payments: LoadResult;
}

const LIST_CUSTOMERS = 20;
const LIST_ROWS = 60;

/** Payments the reads look up: LIST_CUSTOMERS customers with LIST_ROWS paid payments each. */
async function insertReadRows(db: BenchDb): Promise<ReadKeys> {
  await db.query(
    `insert into payments (merchant_uid, imp_uid, customer_uid, name, amount, paid_amount, cancelled_amount, currency, status, kind, pay_method, paid_at, receipt_url, iamport, created_at, updated_at)
     select 'rd_' || c || '_' || i, 'imps_rd' || c || '_' || i, 'rdcust' || c, 'Bench monthly', 9900, 9900, 0, 'KRW', 'PAID', 'AGAIN', 'card',
            now() - (i || ' days')::interval, 'https://example.invalid/receipt', ${IAMPORT_TEMPLATE}, now(), now()
       from generate_series(1, $1::int) i, generate_series(0, $2::int - 1) c`,
    [LIST_ROWS, LIST_CUSTOMERS],
  );
  const rows = await db.query<{ merchant_uid: string }>(`select merchant_uid from payments where merchant_uid like 'rd\\_%' order by merchant_uid limit 500`);
  return { merchantUids: rows.map((r) => r.merchant_uid), customers: Array.from({ length: LIST_CUSTOMERS }, (_, c) => `rdcust${c}`) };
}

/** The Iamport payment object stored with each row (as the server stores Iamport's answer), the same in every database. */
const IAMPORT_TEMPLATE = `'{"amount":9900,"apply_num":"12345678","bank_code":null,"buyer_addr":null,"buyer_email":null,"buyer_name":null,"buyer_postcode":null,"buyer_tel":null,"cancel_amount":0,"cancel_history":[],"cancel_reason":null,"cancelled_at":0,"card_code":"366","card_name":"신한카드","card_number":"424242******4242","card_quota":0,"card_type":0,"channel":"api","currency":"KRW","custom_data":null,"customer_uid":"bench","customer_uid_usage":"payment.scheduled","escrow":false,"fail_reason":null,"failed_at":0,"imp_uid":"imps_000000000000","merchant_uid":"bench","name":"Bench monthly","paid_at":1790000000,"pay_method":"card","pg_id":"nice","pg_provider":"nice","pg_tid":"0000000000","receipt_url":"https://example.invalid/receipt","started_at":1790000000,"status":"paid","user_agent":"sorry_not_supported"}'::jsonb`;

interface ReadTarget {
  name: string;
  server: Server;
}

/** Checks that a server answers both reads correctly (a fast error is not a read). */
async function checkReads(name: string, url: string, keys: ReadKeys): Promise<void> {
  const one = await gql<{ payment: { merchantUid: string } | null }>(url, PAYMENT_QUERY, { merchantUid: keys.merchantUids[0] });
  if (one.payment?.merchantUid !== keys.merchantUids[0]) throw new Error(`${name}: payment lookup answered ${JSON.stringify(one)}`);
  const list = await gql<{ payments: { nodes: unknown[]; pageInfo: { hasNextPage: boolean } } }>(url, PAYMENTS_QUERY, { customerUid: keys.customers[0] });
  if (list.payments.nodes.length !== 20 || !list.payments.pageInfo.hasNextPage) throw new Error(`${name}: payments list answered ${JSON.stringify(list).slice(0, 300)}`);
}

/**
 * Both reads on every target, in `rounds` alternating rounds (target A, B, A, B...),
 * so that a change in the machine's load during the run (other engineers' tests
 * here) falls on every target alike; the figures are the medians of the rounds.
 */
async function measureReads(targets: ReadTarget[], keys: ReadKeys, rounds: number): Promise<Record<string, ReadFigures>> {
  for (const t of targets) await checkReads(t.name, t.server.url, keys);
  const bodies = {
    payment: keys.merchantUids.map((m) => JSON.stringify({ query: PAYMENT_QUERY, variables: { merchantUid: m } })),
    payments: keys.customers.map((c) => JSON.stringify({ query: PAYMENTS_QUERY, variables: { customerUid: c } })),
  };
  const runs = new Map<string, { payment: LoadResult[]; payments: LoadResult[] }>(targets.map((t) => [t.name, { payment: [], payments: [] }]));
  for (let round = 0; round < rounds; round++) {
    for (const kind of ["payment", "payments"] as const) {
      for (const t of targets) {
        t.server.child.assertAlive();
        const r = await load({
          url: `${t.server.url}/graphql`,
          pid: t.server.child.pid,
          headers: { authorization: `Bearer ${API_KEY}` },
          bodies: bodies[kind],
          connections: opts.connections,
          durationSeconds: opts.durationSeconds,
          warmupSeconds: round === 0 ? opts.warmupSeconds : 0,
        });
        if (r.errors > 0 || r.non2xx > 0) throw new Error(`${t.name} ${kind}: ${r.errors} errors and ${r.non2xx} non-2xx answers under load`);
        log(`${t.name}: ${kind === "payment" ? "payment(merchantUid)" : "payments(customerUid, first: 20)"} round ${round + 1}/${rounds}: ${fmtLoad(r)}`);
        runs.get(t.name)![kind].push(r);
      }
    }
  }
  return Object.fromEntries(targets.map((t) => [t.name, { payment: medianLoad(runs.get(t.name)!.payment), payments: medianLoad(runs.get(t.name)!.payments) }]));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function medianLoad(rs: LoadResult[]): LoadResult {
  const cpu = rs.map((r) => r.cpuMsPerRequest).filter((c): c is number => c !== null);
  return {
    rps: median(rs.map((r) => r.rps)),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    requests: rs.reduce((n, r) => n + r.requests, 0),
    errors: rs.reduce((n, r) => n + r.errors, 0),
    non2xx: rs.reduce((n, r) => n + r.non2xx, 0),
    cpuMsPerRequest: cpu.length ? median(cpu) : null,
  };
}

const fmtLoad = (r: LoadResult) =>
  `${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms (${r.requests} requests; ${r.cpuMsPerRequest?.toFixed(3) ?? "?"} ms CPU per request)`;

/** The same answer from both servers (the raw one is a fair limit only if it does the same lookup). */
async function compareAnswers(server: string, raw: string, keys: ReadKeys): Promise<string[]> {
  const diffs: string[] = [];
  for (const [q, v] of [
    [PAYMENT_QUERY, { merchantUid: keys.merchantUids[0] }],
    [PAYMENTS_QUERY, { customerUid: keys.customers[0] }],
  ] as const) {
    const a = JSON.stringify(await gql(server, q, v));
    const b = JSON.stringify(await gql(raw, q, v));
    if (a !== b) diffs.push(`server ${a.slice(0, 200)} vs raw ${b.slice(0, 200)}`);
  }
  return diffs;
}

interface Explained {
  /** Scan nodes of the plan, e.g. "Index Scan on payments_merchant_uid_unique". */
  plan: string;
  /** Median execution time PostgreSQL reports (EXPLAIN ANALYZE), in ms. */
  executionMs: number;
}

/** How PostgreSQL runs the two reads (the SQL the ORM sends): index scans whose cost does not grow with the table. */
async function explainReads(db: BenchDb, keys: ReadKeys): Promise<{ payment: Explained; payments: Explained }> {
  const explain = async (sql: string, values: string[]): Promise<Explained> => {
    const times: number[] = [];
    let plan = "";
    for (const v of values) {
      const [row] = await db.query<{ "QUERY PLAN": unknown }>(`explain (analyze, format json) ${sql}`, [v]);
      const raw = row["QUERY PLAN"];
      const doc = (typeof raw === "string" ? JSON.parse(raw) : raw) as { Plan: PlanNode; "Execution Time": number }[];
      times.push(doc[0]["Execution Time"]);
      plan = scans(doc[0].Plan).join(", ");
    }
    return { plan, executionMs: median(times) };
  };
  return {
    payment: await explain(`select p0.* from payments as p0 where p0.merchant_uid = $1 limit 1`, keys.merchantUids.slice(0, 25)),
    payments: await explain(`select p0.* from payments as p0 where p0.customer_uid = $1 order by p0.id desc limit 21`, [...keys.customers, ...keys.customers]),
  };
}

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
}

function scans(n: PlanNode): string[] {
  const own = /Scan/.test(n["Node Type"]) ? [`${n["Node Type"]} on ${n["Index Name"] ?? n["Relation Name"]}`] : [];
  return [...own, ...(n.Plans ?? []).flatMap(scans)];
}

// ---- 2 and 3: bursts of due charges ------------------------------------------------------

/**
 * A case of the burst: which charge falls due for every customer at once, what it must end in,
 * and what must be scheduled after it. The server and the seed handler are checked against the
 * same description.
 */
interface BurstCase {
  key: CaseKey;
  /** The table's name of the case. */
  title: string;
  /** The card every customer registers (a test card picks the emulator's answer). */
  card: string;
  /** The charge that falls due, by period and attempt. */
  due: { period: number; attempt: number };
  /** What it ends in: PAID, or FAILED (a soft decline). */
  outcome: "PAID" | "FAILED";
  /** The charge scheduled after it: the next period, or a retry of the same one. */
  next: { period: number; attempt: number };
  /** The server's subscription status after it. */
  subscriptionStatus: "ACTIVE" | "PAST_DUE";
  /** The subscriptions start with startAt: the due charge is their first. */
  startAt: boolean;
  /** How many times the emulator delivers each webhook (1, or 3 for duplicates). */
  deliveries: number;
  /** Payment rows per subscription when done, and how many of them PAID (the server's table). */
  rows: number;
  paidRows: number;
}


/** Test cards of the emulator (DESIGN.md): a normal card, and one whose charges after the first decline softly. */
const NORMAL_CARD = CARD.cardNumber;
const SOFT_DECLINE_CARD = "4000-0000-0000-3220";

const CASES: Record<CaseKey, BurstCase> = {
  renewal: {
    key: "renewal",
    title: "period-2 renewals, all paid",
    card: NORMAL_CARD,
    due: { period: 2, attempt: 1 },
    outcome: "PAID",
    next: { period: 3, attempt: 1 },
    subscriptionStatus: "ACTIVE",
    startAt: false,
    deliveries: 1,
    rows: 3,
    paidRows: 2,
  },
  startAt: {
    key: "startAt",
    title: "first charges scheduled with startAt",
    card: NORMAL_CARD,
    due: { period: 1, attempt: 1 },
    outcome: "PAID",
    next: { period: 2, attempt: 1 },
    subscriptionStatus: "ACTIVE",
    startAt: true,
    deliveries: 1,
    rows: 2,
    paidRows: 1,
  },
  decline: {
    key: "decline",
    title: "renewals declined softly (PAST_DUE, retry scheduled)",
    card: SOFT_DECLINE_CARD,
    due: { period: 2, attempt: 1 },
    outcome: "FAILED",
    next: { period: 2, attempt: 2 },
    subscriptionStatus: "PAST_DUE",
    startAt: false,
    deliveries: 1,
    rows: 3,
    paidRows: 1,
  },
  duplicates: {
    key: "duplicates",
    title: "renewals, every webhook delivered 3 times",
    card: NORMAL_CARD,
    due: { period: 2, attempt: 1 },
    outcome: "PAID",
    next: { period: 3, attempt: 1 },
    subscriptionStatus: "ACTIVE",
    startAt: false,
    deliveries: 3,
    rows: 3,
    paidRows: 2,
  },
};

interface BurstFigures {
  renewals: number;
  seconds: number;
  perSecond: number;
  /** advance (and redeliveries) answered after every webhook was answered (or failed). */
  advanceSeconds: number;
  webhooks: { delivered: number; failed: number; dropped: number };
  /** Extra payment rows, PAID rows, executed or pending schedules (database and emulator). */
  duplicates: number;
  /** Customers whose due charge or next schedule is missing or not the one the database names (counted once). */
  losses: number;
  problems: string[];
  setupSeconds: number;
  peakRssMiB: number;
  maxSampledRssMiB: number;
  /** VmRSS when the clock was advanced (after the setup). */
  rssAtStartMiB: number | null;
  /** CPU time of the handling process (server or seed handler) per renewal, from the advance until done. */
  cpuMsPerRenewal: number | null;
  /** The system-time part of it (syscalls, and loopback TCP delivery to the peer). */
  cpuSystemMsPerRenewal: number | null;
  /** CPU time of the emulator (Iamport) per renewal: it shares the machine with the handler and the database. */
  emulatorCpuMsPerRenewal: number | null;
  /** CPU time of the database's processes per renewal (null for a remote PostgreSQL). */
  databaseCpuMsPerRenewal: number | null;
  /** Iamport API calls the emulator answered during the burst, per due charge (null when it does not count them). */
  callsPerRenewal: number | null;
  /** The same calls by route. */
  callsByRoute: Record<string, number>;
  /** The server's mean answers settled per database transaction during the burst (its billing_settlement_batch_size), when it has that metric. */
  meanBatch?: number | null;
  /** With a webhook endpoint registered (part 5): the burst's deliveries when every charge was done. */
  deliveries?: { delivered: number; pending: number; failed: number };
  /** The server's mean webhook events per inbox insert during the burst (its billing_inbox_batch_size), when it has that metric. */
  meanInboxBatch?: number | null;
}

type BatchHistograms = Record<"billing_settlement_batch_size" | "billing_inbox_batch_size", { sum: number; count: number } | null>;

/** The sum and count of the server's batch-size histograms (null where /metrics does not have them: they are optional). */
async function batchSizes(serverUrl: string): Promise<BatchHistograms> {
  const read = (text: string, name: string) => {
    const sum = new RegExp(`^${name}_sum (\\S+)$`, "m").exec(text);
    const count = new RegExp(`^${name}_count (\\S+)$`, "m").exec(text);
    return sum && count ? { sum: Number(sum[1]), count: Number(count[1]) } : null;
  };
  try {
    const res = await fetch(`${serverUrl}/metrics`);
    const text = res.ok ? await res.text() : "";
    return { billing_settlement_batch_size: read(text, "billing_settlement_batch_size"), billing_inbox_batch_size: read(text, "billing_inbox_batch_size") };
  } catch {
    return { billing_settlement_batch_size: null, billing_inbox_batch_size: null };
  }
}

/** The mean batch of one histogram between two readings. */
function meanOf(before: BatchHistograms, after: BatchHistograms, name: keyof BatchHistograms): number | null {
  const b = before[name];
  const a = after[name];
  return b && a && a.count > b.count ? (a.sum - b.sum) / (a.count - b.count) : null;
}

/** The emulator's count of answered Iamport calls by route (empty when it does not answer). */
async function emulatorCalls(emulator: Emulator): Promise<Record<string, number>> {
  try {
    const r = await httpJson<{ calls: Record<string, number> }>("GET", emulator.statsUrl);
    return r.status === 200 ? r.body.calls : {};
  } catch {
    return {};
  }
}

function callsSince(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [route, n] of Object.entries(after)) if (n - (before[route] ?? 0) > 0) out[route] = n - (before[route] ?? 0);
  return out;
}

interface AdvanceAnswer {
  executed: { merchant_uid: string; imp_uid: string | null; status: string }[];
  webhooks: BurstFigures["webhooks"];
}

/**
 * Sends each executed charge's webhook `times` more times through the emulator's control API
 * (POST /__emulator/webhooks/redeliver), the copies of one charge at once, as many charges at a
 * time as the emulator delivers webhooks in flight.
 */
async function redeliverAll(emulator: Emulator, answer: AdvanceAnswer, times: number): Promise<BurstFigures["webhooks"]> {
  const sum = { delivered: 0, failed: 0, dropped: 0 };
  const impUids = answer.executed.flatMap((e) => (e.imp_uid ? [e.imp_uid] : []));
  await forEachLimit(impUids, Math.max(1, Math.floor(opts.webhookConcurrency / times)), async (imp_uid) => {
    const r = await httpJson<{ webhooks: BurstFigures["webhooks"] }>("POST", `${emulator.url}/__emulator/webhooks/redeliver`, { imp_uid, times, concurrency: times }, { timeoutMs: 10 * 60_000 });
    if (r.status !== 200) throw new Error(`redeliver ${imp_uid} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
    sum.delivered += r.body.webhooks.delivered;
    sum.failed += r.body.webhooks.failed;
    sum.dropped += r.body.webhooks.dropped ?? 0;
  });
  return sum;
}

type RunFigures = Pick<
  BurstFigures,
  | "seconds"
  | "advanceSeconds"
  | "webhooks"
  | "peakRssMiB"
  | "maxSampledRssMiB"
  | "rssAtStartMiB"
  | "cpuMsPerRenewal"
  | "cpuSystemMsPerRenewal"
  | "emulatorCpuMsPerRenewal"
  | "databaseCpuMsPerRenewal"
  | "callsPerRenewal"
  | "callsByRoute"
>;

/**
 * Moves the emulator's clock, delivers every webhook `deliveries - 1` more times when asked, and
 * measures until every webhook was answered and `done()` holds.
 */
async function runBurst(db: BenchDb, emulator: Emulator, pid: number, seconds: number, done: () => Promise<boolean>, renewals: number, deliveries: number): Promise<RunFigures> {
  const rssAtStartMiB = memoryOf(pid)?.rssMiB ?? null;
  const callsBefore = await emulatorCalls(emulator);
  const memory = sampleMemory(pid);
  const cpuBefore = cpuTimesOf(pid);
  const emulatorBefore = cpuTimesOf(emulator.child.pid);
  const databaseBefore = cpuOfPids(db.cpuPids());
  const t0 = performance.now();
  const r = await httpJson<AdvanceAnswer>("POST", `${emulator.url}/__emulator/clock/advance`, { seconds }, { timeoutMs: 30 * 60_000 });
  if (r.status !== 200) throw new Error(`advance answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
  const webhooks = { delivered: r.body.webhooks.delivered, failed: r.body.webhooks.failed, dropped: r.body.webhooks.dropped ?? 0 };
  if (deliveries > 1) {
    const more = await redeliverAll(emulator, r.body, deliveries - 1);
    webhooks.delivered += more.delivered;
    webhooks.failed += more.failed;
    webhooks.dropped += more.dropped;
  }
  const advancedAt = performance.now();
  // The database is not polled while the webhooks are being answered: both handlers write before
  // they answer a webhook, so nothing can be done before the last answer, and polling costs the
  // database CPU taken from whichever side is running. After the answers it is polled until done
  // (a handler that answered first and worked afterwards has its time counted to the end); 30 s
  // more for stragglers (there should be none).
  let doneAt: number | null = null;
  const deadline = performance.now() + 30_000;
  while (doneAt === null && performance.now() < deadline) {
    if (await done()) doneAt = performance.now();
    else await sleep(50);
  }
  const mem = memory.stop();
  const cpuAfter = cpuTimesOf(pid);
  const emulatorAfter = cpuTimesOf(emulator.child.pid);
  const databaseAfter = cpuOfPids(db.cpuPids());
  const callsByRoute = callsSince(callsBefore, await emulatorCalls(emulator));
  const calls = Object.values(callsByRoute).reduce((a, b) => a + b, 0);
  const end = Math.max(doneAt ?? performance.now(), advancedAt);
  return {
    seconds: (end - t0) / 1000,
    advanceSeconds: (advancedAt - t0) / 1000,
    webhooks,
    peakRssMiB: mem.peakMiB,
    maxSampledRssMiB: mem.maxRssMiB,
    rssAtStartMiB,
    cpuMsPerRenewal: cpuBefore && cpuAfter ? ((cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) * 1000) / renewals : null,
    cpuSystemMsPerRenewal: cpuBefore && cpuAfter ? ((cpuAfter.system - cpuBefore.system) * 1000) / renewals : null,
    emulatorCpuMsPerRenewal:
      emulatorBefore && emulatorAfter ? ((emulatorAfter.user + emulatorAfter.system - emulatorBefore.user - emulatorBefore.system) * 1000) / renewals : null,
    databaseCpuMsPerRenewal: databaseAfter.size === 0 ? null : (cpuSince(databaseBefore, databaseAfter) * 1000) / renewals,
    callsPerRenewal: calls > 0 ? calls / renewals : null,
    callsByRoute,
  };
}

/** User + system CPU seconds of each pid still running. */
function cpuOfPids(pids: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pids) {
    const t = cpuTimesOf(pid);
    if (t) m.set(pid, t.user + t.system);
  }
  return m;
}

/** CPU seconds used between two readings (a process started meanwhile counts from zero). */
function cpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, t] of after) sum += t - (before.get(pid) ?? 0);
  return sum;
}

/** `customer_uid in (prefix0 .. prefix{n-1})`, with $1 = prefix and $2 = n. */
const CUSTOMERS_IN = `(select $1::text || g from generate_series(0, $2::int - 1) g)`;

/** `endpointUrl`: a webhook endpoint for every event type is registered after the setup (part 5). */
async function serverBurst(db: BenchDb, c: BurstCase, label: string, prefix: string, latencyMs: number, endpointUrl?: string): Promise<BurstFigures> {
  const n = opts.burst;
  let endpointId: string | undefined;
  const emulator = await startEmulator(latencyMs);
  // With --profile the setup runs on a server without the profiler, and the burst on a fresh one with it.
  let server = await startBillingServer(db, emulator, opts.profileDir ? null : "unused");
  try {
    const warm = opts.warmupRenewals;
    const warmPrefix = `${prefix}w`;
    log(`${label}: ${warm} + ${n} subscriptions through GraphQL (registerCard, startSubscription interval DAY${c.startAt ? " with startAt" : ""})`);
    const setupStart = performance.now();
    // startAt: the warm-up's first charges a day from the emulator's clock, the measured ones 5 s later.
    const firstAt = c.startAt ? (await emulatorNow(emulator)) + PERIOD_SECONDS : 0;
    // The embedded database serves one connection: more setup calls in flight than a few only queue
    // for it, and a long queue meets the server's connection-acquire timeout on a loaded machine.
    const subscribe = (customers: string[], startAt: number | null) =>
      forEachLimit(customers, db.concurrentQueries ? 32 : 4, async (customerUid) => {
        await gql(server.url, REGISTER_CARD, { input: { customerUid, ...CARD, cardNumber: c.card } });
        const s = await gql<{ startSubscription: { status: string; statusReason: string | null } }>(server.url, START_SUBSCRIPTION, {
          input: { customerUid, name: "Bench daily", amount: 9900, interval: "DAY", ...(startAt ? { startAt: new Date(startAt * 1000).toISOString() } : {}) },
        });
        if (s.startSubscription.status !== "ACTIVE") throw new Error(`subscription of ${customerUid} is ${s.startSubscription.status}: ${s.startSubscription.statusReason}`);
      });
    const dueOf = async (pfx: string, count: number) => {
      const [due] = await db.query<{ n: string; first: number; last: number }>(
        `select count(*) as n, extract(epoch from min(scheduled_at))::float8 as first, extract(epoch from max(scheduled_at))::float8 as last
           from payments where customer_uid in ${CUSTOMERS_IN} and period = $3 and attempt = $4 and status = 'SCHEDULED'`,
        [pfx, count, c.due.period, c.due.attempt],
      );
      if (Number(due.n) !== count) throw new Error(`${label}: ${due.n} of ${count} due charges (period ${c.due.period}) scheduled after setup`);
      return due;
    };
    const customers = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    // The warm-up's charges fall due first, 3 s or more before the measured ones: one advance runs them alone.
    await subscribe(
      Array.from({ length: warm }, (_, i) => `${warmPrefix}${i}`),
      c.startAt ? firstAt : null,
    );
    if (warm > 0 && !c.startAt) await sleep(3000);
    await subscribe(customers, c.startAt ? firstAt + 5 : null);
    const setupSeconds = (performance.now() - setupStart) / 1000;
    const due = await dueOf(prefix, n);
    if (opts.profileDir) {
      await server.child.stop();
      server = await startBillingServer(db, emulator, `server-${label.replace(/\W+/g, "-")}`, server);
    }
    if (endpointUrl) {
      // After the setup: the warm-up's events are the first delivered, then the burst's.
      const r = await gql<{ createWebhookEndpoint: { endpoint: { id: string } } }>(server.url, CREATE_ENDPOINT, { url: endpointUrl });
      endpointId = r.createWebhookEndpoint.endpoint.id;
    }
    const doneOf = (pfx: string, count: number) => async () => {
      const [r] = await db.query<{ done: string; next: string }>(
        `select count(*) filter (where period = $3 and attempt = $4 and status = $5) as done,
                count(*) filter (where period = $6 and attempt = $7 and status = 'SCHEDULED') as next
           from payments where customer_uid in ${CUSTOMERS_IN}`,
        [pfx, count, c.due.period, c.due.attempt, c.outcome, c.next.period, c.next.attempt],
      );
      return Number(r.done) >= count && Number(r.next) >= count;
    };
    if (warm > 0) {
      const warmDue = await dueOf(warmPrefix, warm);
      const to = Math.ceil(warmDue.last) + 1;
      if (to >= due.first) throw new Error(`${label}: the warm-up's charges are not due before the measured ones`);
      const w = await runBurst(db, emulator, server.child.pid, Math.max(0, to - (await emulatorNow(emulator))), doneOf(warmPrefix, warm), warm, c.deliveries);
      if (!(await doneOf(warmPrefix, warm)())) throw new Error(`${label}: the warm-up's ${warm} charges did not all complete`);
      if (await doneOf(prefix, 1)()) throw new Error(`${label}: a measured charge ran during the warm-up`);
      log(`${label}: warm-up: ${warm} in ${w.seconds.toFixed(2)} s = ${(warm / w.seconds).toFixed(1)}/s; ${w.cpuMsPerRenewal?.toFixed(2) ?? "?"} ms CPU each`);
      // The burst's deliveries start from an empty queue, as the burst without an endpoint does.
      if (endpointId) await waitDeliveriesDrained(db, label);
    }
    // The emulator's clock also moves with real time: on a slow machine the charges may already be
    // due (they run only when the clock is advanced), and the advance is then 0 s.
    const seconds = Math.max(0, Math.ceil(due.last - (await emulatorNow(emulator))) + 1);
    log(`${label}: setup took ${setupSeconds.toFixed(1)} s; advancing the emulator's clock by ${seconds} s: ${n} charges due at once`);

    const batchesBefore = await batchSizes(server.url);
    const deliveredBefore = endpointId ? (await deliveryCounts(db)).delivered : 0;
    const b = await runBurst(db, emulator, server.child.pid, seconds, doneOf(prefix, n), n, c.deliveries);
    server.child.assertAlive();
    // The burst's own: the warm-up's were all delivered before it.
    const deliveries = endpointId ? await deliveryCounts(db).then((d) => ({ ...d, delivered: d.delivered - deliveredBefore })) : undefined;
    const batchesAfter = await batchSizes(server.url);
    const meanBatch = meanOf(batchesBefore, batchesAfter, "billing_settlement_batch_size");
    const meanInboxBatch = meanOf(batchesBefore, batchesAfter, "billing_inbox_batch_size");

    // Per subscription: exactly one due charge with the outcome, exactly one next charge scheduled
    // (the one the subscription names), no other row, no other PAID row; and at the emulator.
    const problems: string[] = [];
    let duplicates = 0;
    const lost = new Set<string>();
    const subs = await db.query<{
      id: string;
      customer_uid: string;
      status: string;
      next_merchant_uid: string | null;
      outcome_rows: string;
      next_scheduled: string;
      next_uid: string | null;
      paid_rows: string;
      all_rows: string;
    }>(
      `select s.id, s.customer_uid, s.status, s.next_merchant_uid,
              count(p.id) filter (where p.period = $3 and p.attempt = $4 and p.status = $5) as outcome_rows,
              count(p.id) filter (where p.period = $6 and p.attempt = $7 and p.status = 'SCHEDULED') as next_scheduled,
              max(p.merchant_uid) filter (where p.period = $6 and p.attempt = $7) as next_uid,
              count(p.id) filter (where p.status = 'PAID') as paid_rows,
              count(p.id) as all_rows
         from subscriptions s left join payments p on p.subscription_id = s.id
        where s.customer_uid in ${CUSTOMERS_IN}
        group by s.id`,
      [prefix, n, c.due.period, c.due.attempt, c.outcome, c.next.period, c.next.attempt],
    );
    if (subs.length !== n) problems.push(`${subs.length} subscriptions in the database, ${n} expected`);
    const found = new Set(subs.map((s) => s.customer_uid));
    for (const cu of customers) if (!found.has(cu)) lost.add(cu);
    const nextByCustomer = new Map<string, string | null>();
    for (const s of subs) {
      nextByCustomer.set(s.customer_uid, s.next_merchant_uid);
      duplicates += Math.max(0, Number(s.all_rows) - c.rows) + Math.max(0, Number(s.paid_rows) - c.paidRows);
      if (Number(s.outcome_rows) === 0 || Number(s.next_scheduled) === 0) lost.add(s.customer_uid);
      if (s.status !== c.subscriptionStatus || s.next_merchant_uid === null || s.next_merchant_uid !== s.next_uid) {
        if (problems.length < 5) problems.push(`${s.id}: ${s.status}, next ${s.next_merchant_uid} (row ${s.next_uid}), ${s.all_rows} payment rows`);
      }
    }
    const emu = await checkEmulator(emulator, customers, (cu) => nextByCustomer.get(cu) ?? null, c.outcome === "PAID" ? "paid" : "failed");
    duplicates += emu.duplicates;
    for (const cu of emu.lost) lost.add(cu);
    problems.push(...emu.problems);
    if (b.webhooks.failed > 0) log(`${label}: ${b.webhooks.failed} webhooks were not answered 2xx; the server's last lines:\n${server.child.tail().slice(-4000)}`);
    const figures: BurstFigures = { renewals: n, ...b, perSecond: n / b.seconds, duplicates, losses: lost.size, problems, setupSeconds, meanBatch, meanInboxBatch, deliveries };
    log(`${label}: ${fmtBurst(figures)}`);
    return figures;
  } finally {
    // The database outlives this burst: later bursts run without the endpoint.
    if (endpointId) await gql(server.url, `mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }`, { id: endpointId }).catch((err) => log(`${label}: deleting the endpoint: ${String(err)}`));
    await server.child.stop();
    await emulator.child.stop();
  }
}

const CREATE_ENDPOINT = `mutation($url: String!) { createWebhookEndpoint(url: $url) { endpoint { id } } }`;

/** The webhook deliveries in the server's table, by status. */
async function deliveryCounts(db: BenchDb): Promise<{ delivered: number; pending: number; failed: number }> {
  const rows = await db.query<{ status: string; n: string }>(`select status, count(*) as n from event_deliveries group by status`);
  const of = (status: string) => Number(rows.find((r) => r.status === status)?.n ?? 0);
  return { delivered: of("DELIVERED"), pending: of("PENDING"), failed: of("FAILED") };
}

/** Waits (polling every 200 ms, at most 10 minutes) until no delivery is pending. */
async function waitDeliveriesDrained(db: BenchDb, label: string): Promise<void> {
  for (let i = 0; ; i++) {
    const d = await deliveryCounts(db);
    if (d.pending === 0) return;
    if (i >= 3000) throw new Error(`${label}: ${d.pending} webhook deliveries still pending after the warm-up`);
    await sleep(200);
  }
}

/**
 * The merchant's endpoint for part 5: answers every delivery 204 at once, as a receiver that
 * queues the event and answers does, and counts them.
 */
async function startWebhookReceiver(): Promise<{ url: string; received: () => number; close: () => Promise<void> }> {
  let received = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      received++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/billing-events`,
    received: () => received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * At the emulator, per customer: exactly one executed schedule, whose payment has the expected
 * status, and exactly one pending schedule, the one the database names.
 */
async function checkEmulator(
  emulator: Emulator,
  customers: string[],
  expectedNext: (customer: string) => string | null,
  paymentStatus: "paid" | "failed",
): Promise<{ duplicates: number; lost: Set<string>; problems: string[] }> {
  const executed = await listSchedules(emulator, "executed");
  const pending = await listSchedules(emulator, "scheduled");
  const ran = new Map<string, WireSchedule[]>();
  for (const s of executed) ran.set(s.customer_uid, [...(ran.get(s.customer_uid) ?? []), s]);
  const next = new Map<string, string[]>();
  for (const s of pending) next.set(s.customer_uid, [...(next.get(s.customer_uid) ?? []), s.merchant_uid]);
  let duplicates = 0;
  const lost = new Set<string>();
  const problems: string[] = [];
  for (const c of customers) {
    const r = ran.get(c) ?? [];
    const q = next.get(c) ?? [];
    duplicates += Math.max(0, r.length - 1) + Math.max(0, q.length - 1);
    if (r.length === 0 || q.length === 0) lost.add(c);
    if (r.length === 1 && r[0].payment_status !== paymentStatus && problems.length < 5) problems.push(`${c}: the executed schedule's payment is ${r[0].payment_status}, ${paymentStatus} expected`);
    const want = expectedNext(c);
    if (q.length === 1 && want !== q[0]) {
      lost.add(c);
      if (problems.length < 5) problems.push(`${c}: the emulator has ${q[0]} pending, the database names ${want}`);
    }
  }
  return { duplicates, lost, problems };
}

async function seedBurst(db: BenchDb, c: BurstCase, label: string, prefix: string, latencyMs: number): Promise<BurstFigures> {
  const n = opts.burst;
  const emulator = await startEmulator(latencyMs);
  const seed = await startSeedHandler(db, emulator);
  try {
    const warm = opts.warmupRenewals;
    const warmPrefix = `${prefix}w`;
    log(`${label}: ${warm} + ${n} billing keys and schedules registered with the emulator directly`);
    const setupStart = performance.now();
    const token = await iamportToken(emulator);
    const warmAt = (await emulatorNow(emulator)) + PERIOD_SECONDS;
    // The warm-up's charges fall due 5 s before the measured ones: one advance runs them alone.
    const at = warmAt + (warm > 0 ? 5 : 0);
    const customers = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const dueUid = (cu: string) => `${cu}_p${c.due.period}_a${c.due.attempt}`;
    const nextSuffix = `_p${c.next.period}_a${c.next.attempt}`;
    const register = async (pfx: string, count: number, dueAt: number) => {
      await forEachLimit(
        Array.from({ length: count }, (_, i) => `${pfx}${i}`),
        32,
        async (cu) => {
          await iamport(emulator, "POST", `/subscribe/customers/${cu}`, token, {
            card_number: c.card,
            expiry: CARD.expiry,
            birth: CARD.birth,
            pwd_2digit: CARD.pwd2digit,
          });
          // A renewal's period 1 was charged at once, as the server charges it at startSubscription
          // (the soft-decline card declines only the charges after the first).
          if (c.due.period > 1) await iamport(emulator, "POST", "/subscribe/payments/again", token, { customer_uid: cu, merchant_uid: `${cu}_p1_a1`, amount: 9900, name: "Bench daily" });
          await iamport(emulator, "POST", "/subscribe/payments/schedule", token, {
            customer_uid: cu,
            schedules: [{ merchant_uid: dueUid(cu), schedule_at: dueAt, amount: 9900, name: "Bench daily", notice_url: `${seed.url}/iamport-callback/schedule` }],
          });
        },
      );
      await db.query(
        `insert into seed_subscriptions (customer_uid, period, status, next_merchant_uid, next_payment_at)
         select cu, $3, $4, cu || $5, to_timestamp($6) from ${CUSTOMERS_IN} as t(cu)`,
        [pfx, count, c.due.period - 1, c.due.period > 1 ? "paid" : "scheduled", `_p${c.due.period}_a${c.due.attempt}`, dueAt],
      );
    };
    await register(warmPrefix, warm, warmAt);
    await register(prefix, n, at);
    const setupSeconds = (performance.now() - setupStart) / 1000;
    const seedStatus = c.outcome === "PAID" ? "paid" : "failed";
    const doneOf = (pfx: string, count: number) => async () => {
      const [r] = await db.query<{ done: string }>(
        `select count(*) as done from seed_subscriptions where customer_uid in ${CUSTOMERS_IN} and status = $3 and next_merchant_uid = customer_uid || $4`,
        [pfx, count, seedStatus, nextSuffix],
      );
      return Number(r.done) >= count;
    };
    if (warm > 0) {
      const w = await runBurst(db, emulator, seed.child.pid, Math.max(0, warmAt + 1 - (await emulatorNow(emulator))), doneOf(warmPrefix, warm), warm, c.deliveries);
      if (!(await doneOf(warmPrefix, warm)())) throw new Error(`${label}: the warm-up's ${warm} charges did not all complete`);
      if (await doneOf(prefix, 1)()) throw new Error(`${label}: a measured charge ran during the warm-up`);
      log(`${label}: warm-up: ${warm} in ${w.seconds.toFixed(2)} s = ${(warm / w.seconds).toFixed(1)}/s; ${w.cpuMsPerRenewal?.toFixed(2) ?? "?"} ms CPU each`);
    }
    const seconds = Math.max(0, at - (await emulatorNow(emulator)) + 1);
    log(`${label}: setup took ${setupSeconds.toFixed(1)} s; advancing the emulator's clock by ${seconds} s: ${n} charges due at once`);
    const b = await runBurst(db, emulator, seed.child.pid, seconds, doneOf(prefix, n), n, c.deliveries);
    seed.child.assertAlive();
    const rows = await db.query<{ customer_uid: string; status: string; next_merchant_uid: string | null }>(
      `select customer_uid, status, next_merchant_uid from seed_subscriptions where customer_uid in ${CUSTOMERS_IN}`,
      [prefix, n],
    );
    const nextByCustomer = new Map(rows.map((r) => [r.customer_uid, r.next_merchant_uid]));
    const lost = new Set(customers.filter((cu) => !nextByCustomer.has(cu)));
    for (const r of rows) if (r.status !== seedStatus || r.next_merchant_uid !== `${r.customer_uid}${nextSuffix}`) lost.add(r.customer_uid);
    const emu = await checkEmulator(emulator, customers, (cu) => nextByCustomer.get(cu) ?? null, seedStatus);
    for (const cu of emu.lost) lost.add(cu);
    const figures: BurstFigures = { renewals: n, ...b, perSecond: n / b.seconds, duplicates: emu.duplicates, losses: lost.size, problems: emu.problems, setupSeconds };
    log(`${label}: ${fmtBurst(figures)}`);
    return figures;
  } finally {
    await seed.child.stop();
    await emulator.child.stop();
  }
}

/**
 * The server and the seed handler in alternating rounds (server, seed, server, ...), each on new
 * customers and fresh emulators, so that a change in the machine's load falls on both alike. Each
 * side's figure is its median round (by renewals per second); duplicates and losses are summed
 * over every round, and the peak RSS is the highest of any round.
 */
async function burstRounds(db: BenchDb, c: BurstCase, label: string, prefix: string, latencyMs: number) {
  const servers: BurstFigures[] = [];
  const seeds: BurstFigures[] = [];
  const n = opts.burstRounds;
  for (let i = 0; i < n; i++) {
    const round = n > 1 ? ` round ${i + 1}/${n}` : "";
    servers.push(await serverBurst(db, c, `${label}: server${round}`, `${prefix}s${i}c`, latencyMs));
    seeds.push(await seedBurst(db, c, `${label}: seed handler${round}`, `${prefix}h${i}c`, latencyMs));
  }
  const median = (list: BurstFigures[]): BurstFigures => {
    const mid = [...list].sort((a, b) => a.perSecond - b.perSecond)[Math.floor((list.length - 1) / 2)];
    return {
      ...mid,
      duplicates: list.reduce((sum, b) => sum + b.duplicates, 0),
      losses: list.reduce((sum, b) => sum + b.losses, 0),
      problems: list.flatMap((b) => b.problems),
      peakRssMiB: Math.max(...list.map((b) => b.peakRssMiB)),
    };
  };
  if (n > 1) log(`${label}: ratios of the rounds: ${servers.map((s, i) => (s.perSecond / seeds[i].perSecond).toFixed(2)).join(", ")}`);
  return { server: median(servers), seed: median(seeds), rounds: { server: servers, seed: seeds } };
}

const fmtBurst = (b: BurstFigures) =>
  `${b.renewals} in ${b.seconds.toFixed(2)} s = ${b.perSecond.toFixed(1)}/s; webhooks ${JSON.stringify(b.webhooks)}; ` +
  `${b.duplicates} duplicates, ${b.losses} losses; ${b.cpuMsPerRenewal?.toFixed(2) ?? "?"} ms CPU each (${b.cpuSystemMsPerRenewal?.toFixed(2) ?? "?"} system), emulator ${b.emulatorCpuMsPerRenewal?.toFixed(2) ?? "?"} ms, database ${b.databaseCpuMsPerRenewal?.toFixed(2) ?? "?"} ms; ` +
  `Iamport calls each ${b.callsPerRenewal?.toFixed(2) ?? "?"} ${JSON.stringify(b.callsByRoute)}; RSS ${b.rssAtStartMiB?.toFixed(0) ?? "?"} MiB at the start, peak ${b.peakRssMiB.toFixed(0)} MiB` +
  `${b.meanBatch != null ? `; ${b.meanBatch.toFixed(2)} answers settled per transaction` : ""}${b.meanInboxBatch != null ? `, ${b.meanInboxBatch.toFixed(2)} events per inbox insert` : ""}${b.problems.length ? `; problems: ${b.problems.join("; ")}` : ""}`;

// ---- 4: bulk load --------------------------------------------------------------------------

async function bulkLoad(db: BenchDb, rows: number): Promise<number> {
  const customers = Math.max(1, Math.floor(rows / 100));
  const chunk = 100_000;
  const started = performance.now();
  for (let from = 1; from <= rows; from += chunk) {
    const to = Math.min(rows, from + chunk - 1);
    await db.query(
      `insert into payments (merchant_uid, imp_uid, customer_uid, name, amount, paid_amount, cancelled_amount, currency, status, kind, pay_method,
                             fail_reason, paid_at, failed_at, receipt_url, iamport, checked_at, created_at, updated_at)
       select 'bulk_' || g, 'imps_bulk' || g, 'bulkcust' || (g % $3::int), 'Bulk monthly', 9900,
              case when g % 10 = 0 then null else 9900 end, 0, 'KRW',
              case when g % 10 = 0 then 'FAILED' else 'PAID' end, case when g % 3 = 0 then 'SCHEDULE' else 'AGAIN' end, 'card',
              case when g % 10 = 0 then '한도초과' end,
              case when g % 10 = 0 then null else now() - (g || ' minutes')::interval end,
              case when g % 10 = 0 then now() - (g || ' minutes')::interval end,
              'https://example.invalid/receipt', ${IAMPORT_TEMPLATE}, now(), now() - (g || ' minutes')::interval, now()
         from generate_series($1::int, $2::int) g`,
      [from, to, customers],
    );
    log(`bulk load: ${to} of ${rows} rows (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  }
  await db.exec("vacuum analyze payments");
  const [c] = await db.query<{ n: string; size: string }>(`select count(*) as n, pg_size_pretty(pg_total_relation_size('payments')) as size from payments`);
  log(`payments table: ${c.n} rows, ${c.size} with indexes`);
  return Number(c.n);
}

// ---- the table ----------------------------------------------------------------------------

interface Row {
  figure: string;
  project: string;
  reference: string;
  ratio: string;
  target: string;
  met: "yes" | "NO" | "—";
}

const rows: Row[] = [];
const f0 = (n: number) => n.toFixed(0);
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const f3 = (n: number | null) => (n === null ? "?" : n.toFixed(3));
const ratioOf = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : a / b);
function row(figure: string, project: string, reference: string, ratio: number | null, target: string, met: boolean | null): void {
  rows.push({ figure, project, reference, ratio: ratio === null ? "" : ratio.toFixed(2), target, met: met === null ? "—" : met ? "yes" : "NO" });
}

/**
 * The framework's floor beside the raw limit: Apollo + graphql-js around the same
 * queries, in the "this server" column (the server's own rows are above it).
 */
function floorRows(fl: LoadResult, r: LoadResult): void {
  row(`  floor, Apollo + graphql-js alone: req/s`, f0(fl.rps), f0(r.rps), fl.rps / r.rps, "(reference)", null);
  row(`    p50 / p99 (ms); CPU per request (ms)`, `${fl.p50} / ${fl.p99}; ${f3(fl.cpuMsPerRequest)}`, `${r.p50} / ${r.p99}; ${f3(r.cpuMsPerRequest)}`, ratioOf(fl.cpuMsPerRequest, r.cpuMsPerRequest), "", null);
}

/** The server against the framework's floor (issue targets: at least 0.7 of its req/s, a p99 within 2x of its p99). */
function floorTargetRows(sv: LoadResult, fl: LoadResult): void {
  const rps = sv.rps / fl.rps;
  row(`  this server / floor: req/s`, f0(sv.rps), f0(fl.rps), rps, "≥ 0.7 of floor", rps >= 0.7);
  const p99 = sv.p99 / fl.p99;
  row(`  this server / floor: p99 (ms)`, String(sv.p99), String(fl.p99), p99, "≤ 2× floor", p99 <= 2);
}

/** The rows of one burst case: rate and ratio, duplicates and losses, peak RSS, CPU and Iamport calls per charge. */
function burstRows(title: string, server: BurstFigures, seed: BurstFigures): void {
  const ratio = server.perSecond / seed.perSecond;
  row(`${title}, ${server.renewals} due at once: per s`, f1(server.perSecond), f1(seed.perSecond), ratio, "≥ 1.5× seed", ratio >= 1.5);
  row(`  duplicates / losses (DB and emulator)`, `${server.duplicates} / ${server.losses}`, `${seed.duplicates} / ${seed.losses}`, null, "0 / 0", server.duplicates === 0 && server.losses === 0);
  row(`  peak RSS (MiB, VmHWM)`, f0(server.peakRssMiB), f0(seed.peakRssMiB), server.peakRssMiB / seed.peakRssMiB, "< 400 MiB", server.peakRssMiB < 400);
  const cpu = (b: BurstFigures) => `${f2(b.cpuMsPerRenewal ?? NaN)} / ${f2(b.emulatorCpuMsPerRenewal ?? NaN)} / ${f2(b.databaseCpuMsPerRenewal ?? NaN)}`;
  row(`  CPU per charge (ms): handler / emulator / database`, cpu(server), cpu(seed), ratioOf(server.cpuMsPerRenewal, seed.cpuMsPerRenewal), "", null);
  row(`  Iamport calls per charge`, server.callsPerRenewal?.toFixed(2) ?? "?", seed.callsPerRenewal?.toFixed(2) ?? "?", null, "", null);
}

function printTable(): string {
  const head: Row = { figure: "figure", project: "this server", reference: "reference", ratio: "ratio", target: "target", met: "—" };
  const cols = ["figure", "project", "reference", "ratio", "target", "met"] as const;
  const all = [head, ...rows];
  const width = cols.map((c) => Math.max(...all.map((r) => (c === "met" && r === head ? 4 : r[c].length))));
  const line = (r: Row) => `| ${cols.map((c, i) => (c === "met" && r === head ? "met" : r[c]).padEnd(width[i])).join(" | ")} |`;
  const out = [line(head), `|${width.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
  console.log(out);
  return out;
}

// ---- main -------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const startedAt = new Date();
  const t0 = performance.now();
  const loadBefore = loadAverage();
  if (opts.profileDir) fs.mkdirSync(opts.profileDir, { recursive: true });
  const adminUrl = process.env.DATABASE_URL || undefined;
  const db = await openBenchDb(adminUrl, opts.pool);
  log(`database: ${db.describe()}`);
  log(`machine: ${os.cpus().length} CPUs, load average ${loadBefore.join(" ")}; options ${JSON.stringify({ ...opts, phases: [...opts.phases] })}`);
  const results: Record<string, unknown> = {};
  const extraDbs: BenchDb[] = [];
  let failure: string | null = null;
  try {
    // The schema: the server migrates the database at its first start.
    {
      const emulator = await startEmulator(0);
      const server = await startBillingServer(db, emulator, null);
      await server.child.stop();
      await emulator.child.stop();
      await db.exec(`create table if not exists seed_subscriptions (
        customer_uid varchar(80) primary key, period int not null, status text not null, imp_uid text, payment jsonb,
        paid_at timestamptz, next_merchant_uid varchar(80), next_payment_at timestamptz, updated_at timestamptz not null default now())`);
    }

    // 2. Bursts of charges due at once, case by case.
    if (opts.phases.has("burst")) {
      const burst: Record<string, unknown> = {};
      for (const key of opts.cases) {
        const c = CASES[key];
        const { server, seed, rounds } = await burstRounds(db, c, `burst ${key}`, `b${key.slice(0, 3)}`, 0);
        burst[key] = { server, seed, rounds };
        burstRows(c.title, server, seed);
        if (server.duplicates || server.losses) failure ??= `${c.title}: ${server.duplicates} duplicates and ${server.losses} losses (${server.problems.join("; ")})`;
        if (seed.duplicates || seed.losses) log(`WARNING: the seed handler's ${c.title}: ${seed.duplicates} duplicates and ${seed.losses} losses (${seed.problems.join("; ")})`);
      }
      results.burst = burst;
    }

    // 1. GraphQL reads, beside the raw limit on the same rows.
    let keys: ReadKeys | null = null;
    if (opts.phases.has("read") || opts.phases.has("scale")) keys = await insertReadRows(db);
    if (opts.phases.has("read")) {
      const [{ n }] = await db.query<{ n: string }>("select count(*) as n from payments");
      const emulator = await startEmulator(0);
      const server = await startBillingServer(db, emulator, "server-read");
      await asInService(server);
      let figures: Record<string, ReadFigures> = {};
      let diffs: string[] = [];
      try {
        if (db.concurrentQueries) {
          // All three up at once, measured in alternating rounds; they must give the same answers.
          const raw = await startRawServer(db);
          const floor = await startRawServer(db, "apollo");
          try {
            diffs = [...(await compareAnswers(server.url, raw.url, keys!)), ...(await compareAnswers(floor.url, raw.url, keys!)).map((d) => `floor: ${d}`)];
            figures = await measureReads(
              [
                { name: "server", server },
                { name: "raw", server: raw },
                { name: "floor", server: floor },
              ],
              keys!,
              opts.rounds,
            );
          } finally {
            await raw.child.stop();
            await floor.child.stop();
          }
        } else {
          figures = await measureReads([{ name: "server", server }], keys!, opts.rounds);
        }
      } finally {
        await server.child.stop();
        await emulator.child.stop();
      }
      if (!db.concurrentQueries) {
        // The embedded database takes one client at a time: the raw server, then the floor, after the server.
        for (const kind of ["raw", "apollo"] as const) {
          const name = kind === "raw" ? "raw" : "floor";
          const ref = await startRawServer(db, kind);
          try {
            figures[name] = (await measureReads([{ name, server: ref }], keys!, opts.rounds))[name];
          } finally {
            await ref.child.stop();
          }
        }
      }
      if (diffs.length) log(`WARNING: the raw server's answers differ from the server's or the floor's: ${diffs.join(" | ")}`);
      const s = figures.server;
      const r = figures.raw;
      const fl = figures.floor;
      results.read = { rows: Number(n), server: s, raw: r, floor: fl, answersDiffer: diffs };
      row(`GraphQL payment(merchantUid), ${opts.connections} conns: req/s`, f0(s.payment.rps), f0(r.payment.rps), s.payment.rps / r.payment.rps, "≥ 0.35 of raw", s.payment.rps / r.payment.rps >= 0.35);
      row(`  p50 / p99 latency (ms)`, `${s.payment.p50} / ${s.payment.p99}`, `${r.payment.p50} / ${r.payment.p99}`, null, "p99 < 20 ms", s.payment.p99 < 20);
      row(`  CPU per request (ms, serving process)`, f3(s.payment.cpuMsPerRequest), f3(r.payment.cpuMsPerRequest), ratioOf(s.payment.cpuMsPerRequest, r.payment.cpuMsPerRequest), "", null);
      floorRows(fl.payment, r.payment);
      floorTargetRows(s.payment, fl.payment);
      row(`GraphQL payments(customerUid, first: 20): req/s`, f0(s.payments.rps), f0(r.payments.rps), s.payments.rps / r.payments.rps, "(≥ 0.35 of raw)", s.payments.rps / r.payments.rps >= 0.35);
      row(`  p50 / p99 latency (ms)`, `${s.payments.p50} / ${s.payments.p99}`, `${r.payments.p50} / ${r.payments.p99}`, null, "(p99 < 20 ms)", s.payments.p99 < 20);
      row(`  CPU per request (ms, serving process)`, f3(s.payments.cpuMsPerRequest), f3(r.payments.cpuMsPerRequest), ratioOf(s.payments.cpuMsPerRequest, r.payments.cpuMsPerRequest), "", null);
      floorRows(fl.payments, r.payments);
      floorTargetRows(s.payments, fl.payments);
    }

    // 3. Upstream latency: paid renewals, against the delivery limit.
    if (opts.phases.has("latency")) {
      const c = CASES.renewal;
      const { server, seed, rounds } = await burstRounds(db, c, `latency +${opts.latencyMs} ms`, "l", opts.latencyMs);
      const limit = (b: BurstFigures) => (b.callsPerRenewal ? opts.webhookConcurrency / (b.callsPerRenewal * (opts.latencyMs / 1000)) : null);
      const serverLimit = limit(server);
      const seedLimit = limit(seed);
      results.latency = { latencyMs: opts.latencyMs, server, seed, rounds, deliveryLimit: { server: serverLimit, seed: seedLimit } };
      burstRows(`${c.title}, +${opts.latencyMs} ms per Iamport call`, server, seed);
      const fl = (x: number | null) => (x === null ? "?" : f1(x));
      row(
        `  delivery limit: ${opts.webhookConcurrency} in flight / (calls × ${opts.latencyMs} ms) (/s)`,
        `${fl(serverLimit)} (${server.callsPerRenewal?.toFixed(2) ?? "?"} calls)`,
        `${fl(seedLimit)} (${seed.callsPerRenewal?.toFixed(2) ?? "?"} calls)`,
        null,
        "",
        null,
      );
      const sr = ratioOf(server.perSecond, serverLimit);
      const hr = ratioOf(seed.perSecond, seedLimit);
      row(`  rate / delivery limit`, sr === null ? "?" : f2(sr), hr === null ? "?" : f2(hr), null, "≥ 0.9", sr === null ? null : sr >= 0.9);
      if (server.duplicates || server.losses) failure ??= `latency burst: ${server.duplicates} duplicates and ${server.losses} losses (${server.problems.join("; ")})`;
    }

    // 5. Events: the paid renewals with one webhook endpoint registered, beside the same burst without
    // one, in alternating rounds; the ratio of the medians.
    if (opts.phases.has("events")) {
      const c = CASES.renewal;
      const receiver = await startWebhookReceiver();
      try {
        const without: BurstFigures[] = [];
        const withEndpoint: BurstFigures[] = [];
        for (let i = 0; i < opts.burstRounds; i++) {
          const round = opts.burstRounds > 1 ? ` round ${i + 1}/${opts.burstRounds}` : "";
          without.push(await serverBurst(db, c, `events: no endpoint${round}`, `ev${i}n`, 0));
          withEndpoint.push(await serverBurst(db, c, `events: one endpoint${round}`, `ev${i}w`, 0, receiver.url));
        }
        const median = (list: BurstFigures[]) => [...list].sort((a, b) => a.perSecond - b.perSecond)[Math.floor((list.length - 1) / 2)];
        const plain = median(without);
        const hooked = median(withEndpoint);
        if (opts.burstRounds > 1) log(`events: ratios of the rounds: ${withEndpoint.map((w, i) => (w.perSecond / without[i].perSecond).toFixed(2)).join(", ")}`);
        results.events = { without: plain, withEndpoint: hooked, rounds: { without, withEndpoint }, received: receiver.received() };
        const ratio = hooked.perSecond / plain.perSecond;
        row(`${c.title}, one webhook endpoint, ${hooked.renewals} due at once: per s`, f1(hooked.perSecond), `${f1(plain.perSecond)} (none)`, ratio, "≥ 0.9× none", ratio >= 0.9);
        const d = hooked.deliveries;
        row(`  the burst's deliveries when its charges were done: delivered / pending / failed`, d ? `${d.delivered} / ${d.pending} / ${d.failed}` : "?", "", null, "", null);
        const all = [...without, ...withEndpoint];
        const duplicates = all.reduce((sum, b) => sum + b.duplicates, 0);
        const losses = all.reduce((sum, b) => sum + b.losses, 0);
        row(`  duplicates / losses (DB and emulator)`, `${duplicates} / ${losses}`, "", null, "0 / 0", duplicates === 0 && losses === 0);
        if (duplicates || losses) failure ??= `events bursts: ${duplicates} duplicates and ${losses} losses (${all.flatMap((b) => b.problems).join("; ")})`;
      } finally {
        await receiver.close();
      }
    }

    // 4. Scale of data: a second database with the same read rows and opts.rows more payments;
    // a server on each, measured in alternating rounds.
    if (opts.phases.has("scale")) {
      const large = await openBenchDb(adminUrl, opts.pool);
      extraDbs.push(large);
      const emulator = await startEmulator(0);
      const small = await startBillingServer(db, emulator, "server-scale-small");
      await asInService(small);
      let big = await startBillingServer(large, emulator, null); // migrates the new database
      try {
        await big.child.stop();
        const bigKeys = await insertReadRows(large);
        log(`bulk load: ${opts.rows} payments into a second database`);
        const total = await bulkLoad(large, opts.rows);
        big = await startBillingServer(large, emulator, "server-scale-large");
        await asInService(big);
        const [{ n: smallRows }] = await db.query<{ n: string }>("select count(*) as n from payments");
        const smallName = `server, ${smallRows} payments`;
        const bigName = `server, ${total} payments`;
        if (JSON.stringify(bigKeys) !== JSON.stringify(keys)) throw new Error("the two databases were given different read keys");
        const figures = await measureReads([{ name: smallName, server: small }, { name: bigName, server: big }], keys!, opts.rounds);
        const plans = { small: await explainReads(db, keys!), large: await explainReads(large, keys!) };
        const s = figures[smallName];
        const l = figures[bigName];
        results.scale = { smallRows: Number(smallRows), rows: total, small: s, large: l, plans };
        const a = l.payment.rps / s.payment.rps;
        const b = l.payments.rps / s.payments.rps;
        row(`payment(merchantUid) with ${total} payments: req/s`, f0(l.payment.rps), `${f0(s.payment.rps)} (${smallRows} rows)`, a, "within 20% of small", a >= 0.8);
        row(`  p50 / p99 (ms); PostgreSQL execution (ms)`, `${l.payment.p50} / ${l.payment.p99}; ${f3(plans.large.payment.executionMs)}`, `${s.payment.p50} / ${s.payment.p99}; ${f3(plans.small.payment.executionMs)}`, null, plans.large.payment.plan, null);
        row(`payments(customerUid, first: 20) with ${total}: req/s`, f0(l.payments.rps), `${f0(s.payments.rps)} (${smallRows} rows)`, b, "within 20% of small", b >= 0.8);
        row(`  p50 / p99 (ms); PostgreSQL execution (ms)`, `${l.payments.p50} / ${l.payments.p99}; ${f3(plans.large.payments.executionMs)}`, `${s.payments.p50} / ${s.payments.p99}; ${f3(plans.small.payments.executionMs)}`, null, plans.large.payments.plan, null);
      } finally {
        await big.child.stop();
        await small.child.stop();
        await emulator.child.stop();
      }
    }
  } catch (e) {
    await stopAllChildren();
    for (const d of [db, ...extraDbs]) await d.close().catch(() => undefined);
    throw e;
  }
  for (const d of [db, ...extraDbs]) await d.close();

  const seconds = (performance.now() - t0) / 1000;
  const loadAfter = loadAverage();
  console.log("");
  console.log(`Benchmark ${quick ? "(quick) " : ""}of ${startedAt.toISOString()}: ${db.describe()}; ${os.cpus().length} CPUs; load average before ${loadBefore.join(" ")}, after ${loadAfter.join(" ")}; ${seconds.toFixed(0)} s`);
  const table = printTable();
  const out = {
    date: startedAt.toISOString(),
    quick,
    seconds,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: os.totalmem() / 2 ** 30, node: process.version, loadBefore, loadAfter },
    database: db.describe(),
    options: { ...opts, phases: [...opts.phases] },
    table: rows,
    tableText: table,
    results,
  };
  fs.mkdirSync(path.dirname(argv.json!), { recursive: true });
  fs.writeFileSync(argv.json!, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nfigures written to ${path.relative(process.cwd(), argv.json!)}`);
  if (failure) {
    console.error(`FAILED: ${failure}`);
    process.exitCode = 1;
  }
}

main().catch(async (e: unknown) => {
  console.error(`bench crashed: ${(e as Error).stack ?? String(e)}`);
  console.error(childTails());
  await stopAllChildren();
  process.exit(1);
});
