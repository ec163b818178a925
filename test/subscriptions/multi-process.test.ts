import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import axios, { AxiosInstance } from "axios";
import { Client } from "pg";
import { RunningEmulator, startEmulator } from "#iamport-emulator";
import { adminDatabaseUrl, createTestDatabase, GOOD_CARD, REGISTER_CARD } from "../support/harness";
import { freePort, isRunning, ROOT, ServerProcess, spawnServer, stopServer, waitHealthy } from "../support/processes";
import { renewalUid, START, Sub } from "./helpers";

/*
 * Three server processes on one PostgreSQL database, as replicas behind a load
 * balancer: a burst of renewals whose webhooks are spread over the three by a
 * round-robin forwarder, and one of them killed with SIGKILL in the middle of
 * it, at the worst moment for it: Iamport has just registered a next period's
 * charge for it, and the process dies before the answer reaches it (so before
 * the transaction that records it commits). It is restarted on the same port.
 * Once the processes' reconciliation has run, every renewal has landed exactly
 * once, in the database and at Iamport (the emulator).
 *
 * The servers are the compiled dist/main.js (jest's globalSetup builds it) as
 * real child processes, so the database must outlive them: PostgreSQL only.
 */

const MAIN = path.join(ROOT, "dist", "main.js");
const API_KEY = "multi-process-test-key";
const SUBSCRIPTIONS = 60;
const AMOUNT = 9900;
/** The process that dies: the second of the three. */
const VICTIM = 1;
/** The victim has answered this many webhooks of the burst before it is killed (so it dies mid-burst, not before it). */
const ANSWERED_BEFORE_KILL = 5;

const admin = adminDatabaseUrl();
if (!admin) {
  console.log("multi-process test skipped: three server processes need one shared PostgreSQL (set TEST_DATABASE_URL); the embedded database lives inside a single process");
}
const withPostgres = admin ? describe : describe.skip;

interface Target {
  port: number;
  /** Webhooks sent to this server. */
  forwarded: number;
  /** Answered 2xx. */
  answered: number;
  /** Answered 5xx, or the server was unreachable or died with the request in flight (the forwarder answers 502). */
  failed: number;
}

interface Proxy {
  url: string;
  close(): Promise<void>;
}

/** Reads a request or response body. */
function body(stream: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

/** One HTTP exchange with 127.0.0.1:port; rejects when the server is unreachable or dies mid-request. */
function relay(
  port: number,
  req: http.IncomingMessage,
  payload: Buffer,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...req.headers, host: `127.0.0.1:${port}`, "content-length": payload.length };
    delete headers.connection;
    delete headers["transfer-encoding"];
    const out = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers, agent: false }, (res) =>
      body(res).then((b) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: b }), reject),
    );
    out.on("error", reject);
    out.end(payload);
  });
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
}

function closer(server: http.Server): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

/**
 * The load balancer in front of the three servers, for Iamport's webhooks
 * (every server's PUBLIC_URL, so every schedule's notice_url, and the
 * emulator's webhook URL): each webhook goes to the next server in turn, dead
 * or alive, and a dead one's share is answered 502 as a proxy with a dead
 * upstream answers, so Iamport's retry or reconciliation has to recover it.
 */
async function startWebhookForwarder(targets: Target[]): Promise<Proxy> {
  let next = 0;
  const server = http.createServer(async (req, res) => {
    const payload = await body(req);
    const target = targets[next++ % targets.length];
    target.forwarded += 1;
    try {
      const r = await relay(target.port, req, payload);
      if (r.status >= 200 && r.status < 300) target.answered += 1;
      else target.failed += 1;
      res.writeHead(r.status, { "content-type": r.headers["content-type"] ?? "application/json" }).end(r.body);
    } catch (err) {
      target.failed += 1;
      res.writeHead(502, { "content-type": "text/plain" }).end(`upstream 127.0.0.1:${target.port}: ${(err as Error).message}`);
    }
  });
  return { url: await listen(server), close: closer(server) };
}

/**
 * The victim's way to Iamport: passes every call through to the emulator,
 * and lets `intercept` see each answer before the victim does (it may kill
 * the victim instead of letting the answer through).
 */
async function startIamportProxy(
  iamportPort: number,
  intercept: (call: { method: string; path: string; status: number; body: Buffer }) => "pass" | "swallow",
): Promise<Proxy> {
  const server = http.createServer(async (req, res) => {
    const payload = await body(req);
    try {
      const r = await relay(iamportPort, req, payload);
      if (intercept({ method: req.method ?? "", path: req.url ?? "", status: r.status, body: r.body }) === "swallow") {
        res.destroy();
        return;
      }
      res.writeHead(r.status, { "content-type": r.headers["content-type"] ?? "application/json" }).end(r.body);
    } catch (err) {
      res.writeHead(502, { "content-type": "text/plain" }).end((err as Error).message);
    }
  });
  return { url: await listen(server), close: closer(server) };
}

withPostgres("three server processes on one database, one killed with SIGKILL in a burst of renewals", () => {
  let db: { url: string; drop: () => Promise<void> } | undefined;
  let pg: Client | undefined;
  let emulator: RunningEmulator | undefined;
  let emu: AxiosInstance;
  let webhookForwarder: Proxy | undefined;
  let iamportProxy: Proxy | undefined;
  const targets: Target[] = [];
  const procs: ServerProcess[] = [];
  /** The processes serving each target now (the victim's slot is replaced by its restart). */
  const serving: ServerProcess[] = [];
  const envs: Record<string, string>[] = [];

  /** Set while the burst runs; the victim is killed from the Iamport proxy once. */
  let armed = false;
  let kill:
    | { answeredBefore: number; forwardedBefore: number; burstForwardedBefore: number; merchantUid: string }
    | undefined;
  let burstStart: Target[] = [];

  const url = (i: number) => `http://127.0.0.1:${targets[i].port}`;

  beforeAll(async () => {
    db = (await createTestDatabase())!;
    pg = new Client({ connectionString: db.url });
    await pg.connect();
    for (let i = 0; i < 3; i++) targets.push({ port: await freePort(), forwarded: 0, answered: 0, failed: 0 });
    webhookForwarder = await startWebhookForwarder(targets);
    // Iamport's own behaviour: one retry of a failed delivery (the retry goes to the next server in turn).
    emulator = await startEmulator({
      port: 0,
      autoRunIntervalMs: 0,
      webhookUrl: `${webhookForwarder.url}/iamport-webhook`,
      webhookRetries: 1,
      webhookRetryIntervalMs: 300,
      timeoutHoldMs: 2_000,
    });
    emu = axios.create({ baseURL: emulator.url, validateStatus: () => true, timeout: 30_000 });
    iamportProxy = await startIamportProxy(emulator.port, (call) => {
      if (!armed || kill || call.method !== "POST" || call.path.split("?")[0] !== "/subscribe/payments/schedule" || call.status !== 200) return "pass";
      const victim = targets[VICTIM];
      if (victim.answered - burstStart[VICTIM].answered < ANSWERED_BEFORE_KILL) return "pass";
      const registered = (JSON.parse(call.body.toString()).response as { merchant_uid: string; schedule_status: string }[] | null)?.[0];
      if (registered?.schedule_status !== "scheduled") return "pass";
      // Iamport has registered the next period's charge; the process dies before it hears so.
      kill = {
        answeredBefore: victim.answered - burstStart[VICTIM].answered,
        forwardedBefore: victim.forwarded - burstStart[VICTIM].forwarded,
        burstForwardedBefore: targets.reduce((n, t, i) => n + t.forwarded - burstStart[i].forwarded, 0),
        merchantUid: registered.merchant_uid,
      };
      serving[VICTIM].child.kill("SIGKILL");
      return "swallow";
    });
    for (let i = 0; i < 3; i++) {
      envs.push({
        NODE_ENV: "test",
        PORT: String(targets[i].port),
        HOST: "127.0.0.1",
        // Every schedule's notice_url: Iamport's webhooks reach the three through the forwarder.
        PUBLIC_URL: webhookForwarder.url,
        DATABASE_URL: db.url,
        IAMPORT_API_URL: i === VICTIM ? iamportProxy.url : emulator.url,
        IAMPORT_API_KEY: "imp_apikey",
        IAMPORT_API_SECRET: "emulator_secret",
        IAMPORT_TIMEOUT_MS: "2000",
        API_KEYS: API_KEY,
        RECONCILE_INTERVAL_SECONDS: "1",
        LOG_LEVEL: "warn",
        RATE_LIMIT_PER_MINUTE: "0",
        RATE_LIMIT_PUBLIC_PER_MINUTE: "0",
      });
    }
    // The first applies the migrations; the other two start on the migrated database side by side.
    const start = async (i: number) => {
      const p = spawnServer(MAIN, envs[i]);
      procs.push(p);
      serving[i] = p;
      await waitHealthy(url(i), p);
    };
    await start(0);
    await Promise.all([start(1), start(2)]);
  }, 180_000);

  afterAll(async () => {
    // Every step runs whatever failed before it: no process, port or database is left behind.
    const steps: (() => Promise<unknown> | undefined)[] = [
      () => Promise.all(procs.map((p) => stopServer(p))),
      () => webhookForwarder?.close(),
      () => iamportProxy?.close(),
      () => emulator?.close(),
      () => pg?.end(),
      () => db?.drop(),
    ];
    let first: unknown;
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        first ??= err;
      }
    }
    if (first) throw first;
  });

  async function gql<T>(server: number, query: string, variables: Record<string, unknown>): Promise<T> {
    const r = await axios.post(`${url(server)}/graphql`, { query, variables }, { headers: { authorization: `Bearer ${API_KEY}` }, timeout: 30_000 });
    if (r.data.errors) throw new Error(JSON.stringify(r.data.errors));
    return r.data.data as T;
  }

  async function rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await pg!.query(sql, params)).rows as T[];
  }

  /** Each subscription's payment rows as "period:attempt:status" with their count, from the database. */
  async function paymentsBySubscription(): Promise<Map<string, string[]>> {
    const r = await rows<{ subscription_id: string; key: string }>(
      `select subscription_id, period || ':' || attempt || ':' || status || ' x' || count(*) as key
         from payments where subscription_id is not null group by subscription_id, period, attempt, status order by 1, 2`,
    );
    const out = new Map<string, string[]>();
    for (const x of r) out.set(x.subscription_id, [...(out.get(x.subscription_id) ?? []), x.key]);
    return out;
  }

  const RENEWED_ONCE = ["1:1:PAID x1", "2:1:PAID x1", "3:1:SCHEDULED x1"];

  async function notRenewedOnce(subs: Sub[]): Promise<{ id: string; rows: string[] }[]> {
    const by = await paymentsBySubscription();
    return subs.map((s) => ({ id: s.id, rows: by.get(s.id) ?? [] })).filter((x) => JSON.stringify(x.rows) !== JSON.stringify(RENEWED_ONCE));
  }

  async function unprocessedEvents(): Promise<number> {
    return Number((await rows<{ n: string }>(`select count(*) as n from webhook_events where processed_at is null`))[0].n);
  }

  /** Polls until `done` holds; on time-out fails with what is still wrong and the processes' last log lines. */
  async function settle(what: string, done: () => Promise<unknown[] | number>, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const left = await done();
      if (Array.isArray(left) ? left.length === 0 : left === 0) return;
      if (Date.now() > until) {
        const logs = serving.map((p, i) => `--- server ${i} (pid ${p.child.pid}):\n${p.output.slice(-30).join("\n")}`).join("\n");
        throw new Error(`${what}: still ${JSON.stringify(Array.isArray(left) ? left.slice(0, 10) : left)}\n${logs}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async function iamportToken(): Promise<string> {
    const r = await emu.post("/users/getToken", { imp_key: "imp_apikey", imp_secret: "emulator_secret" });
    return r.data.response.access_token as string;
  }

  /**
   * The database: one PAID period 2 and one SCHEDULED period 3 per subscription, nothing else, every subscription
   * ACTIVE in period 2. Iamport: two charges per customer in all (periods 1 and 2), each period-2 order paid under
   * the imp_uid the database holds, and per customer the period-2 schedule executed and one period-3 schedule.
   */
  async function expectEveryRenewalOnce(subs: Sub[]): Promise<void> {
    expect(await notRenewedOnce(subs)).toEqual([]);
    expect(await rows(`select count(*)::int as n from payments where subscription_id is null`)).toEqual([{ n: 0 }]);
    expect(await rows(`select status, current_period, count(*)::int as n from subscriptions group by 1, 2`)).toEqual([
      { status: "ACTIVE", current_period: 2, n: SUBSCRIPTIONS },
    ]);
    const paid2 = await rows<{ merchant_uid: string; imp_uid: string; amount: number; paid_amount: number }>(
      `select merchant_uid, imp_uid, amount, paid_amount from payments where period = 2 and status = 'PAID'`,
    );
    expect(new Set(paid2.map((p) => p.imp_uid)).size).toBe(SUBSCRIPTIONS);
    expect(paid2.map((p) => [p.amount, p.paid_amount])).toEqual(Array(SUBSCRIPTIONS).fill([AMOUNT, AMOUNT]));

    expect((await emu.get("/__emulator/health")).data).toMatchObject({ payments: 2 * SUBSCRIPTIONS, pending_schedules: SUBSCRIPTIONS });
    const token = await iamportToken();
    const impUidOf = new Map(paid2.map((p) => [p.merchant_uid, p.imp_uid]));
    const now = (await emu.get("/__emulator/clock")).data.now as number;
    for (const s of subs) {
      const found = await emu.get(`/payments/find/${renewalUid(s.id, 2)}`, { headers: { Authorization: token } });
      expect(found.data.response).toMatchObject({ status: "paid", amount: AMOUNT, imp_uid: impUidOf.get(renewalUid(s.id, 2)) });
      const list = await emu.get(`/subscribe/payments/schedule/customers/${s.customerUid}`, {
        headers: { Authorization: token },
        // Iamport lists at most three months at a time: the executed renewal and the next one are within that.
        params: { from: now - 40 * 86_400, to: now + 40 * 86_400 },
      });
      const schedules = list.data.response.list as { merchant_uid: string; schedule_status: string }[];
      expect(schedules.map((x) => `${x.merchant_uid}:${x.schedule_status}`).sort()).toEqual(
        [`${renewalUid(s.id, 2)}:executed`, `${renewalUid(s.id, 3)}:scheduled`].sort(),
      );
    }
  }

  it("lands every renewal exactly once, in the database and at Iamport", async () => {
    // N customers and subscriptions, through GraphQL on the first server; the first periods are charged now.
    const subs: Sub[] = [];
    const tag = Date.now().toString(36);
    for (let i = 0; i < SUBSCRIPTIONS; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(10, SUBSCRIPTIONS - i) }, async (_, j) => {
          const customerUid = `mp_${i + j}_${tag}`;
          await gql(0, REGISTER_CARD, { input: { customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12" } });
          return (await gql<{ startSubscription: Sub }>(0, START, { input: { customerUid, name: "Plan", amount: AMOUNT, interval: "MONTH" } }))
            .startSubscription;
        }),
      );
      subs.push(...batch);
    }
    expect(subs.map((s) => s.status)).toEqual(Array(SUBSCRIPTIONS).fill("ACTIVE"));
    expect((await emu.get("/__emulator/health")).data).toMatchObject({ payments: SUBSCRIPTIONS, pending_schedules: SUBSCRIPTIONS });
    // The first periods' webhooks are all sent and handled before the burst, so that the burst's numbers are its own
    // (an entry is "dropped" until its delivery, retries included, has ended).
    await settle("first-period webhooks", async () => {
      const log = (await emu.get("/__emulator/webhooks")).data.webhooks as { body: { merchant_uid: string }; outcome: string }[];
      const sent = new Set(log.filter((e) => e.outcome !== "dropped").map((e) => e.body.merchant_uid));
      return subs.filter((s) => !sent.has(renewalUid(s.id, 1)));
    }, 90_000);
    await settle("first-period webhook events", unprocessedEvents, 90_000);

    // Every renewal falls due in one clock move; the victim dies a few webhooks into the burst and is restarted.
    burstStart = targets.map((t) => ({ ...t }));
    armed = true;
    const due = Math.max(...subs.map((s) => Math.floor(new Date(s.nextPaymentAt!).getTime() / 1000)));
    const now = (await emu.get("/__emulator/clock")).data.now as number;
    const advancing = emu.post("/__emulator/clock/advance", { seconds: due - now + 10 });
    const victim = serving[VICTIM];
    await Promise.race([victim.exited, advancing]);
    if (!kill) throw new Error(`the burst ended and the victim was never killed: ${JSON.stringify(targets)}`);
    const death = await victim.exited;
    const restarted = spawnServer(MAIN, envs[VICTIM]);
    procs.push(restarted);
    serving[VICTIM] = restarted;
    const advanced = (await advancing).data as { executed: { merchant_uid: string; status: string }[]; webhooks: { delivered: number; failed: number } };
    await waitHealthy(url(VICTIM), restarted);

    // Killed by SIGKILL, mid-burst: it had answered some of its webhooks, and the burst went on without it.
    expect(death).toEqual({ code: null, signal: "SIGKILL" });
    expect(kill!.answeredBefore).toBeGreaterThanOrEqual(ANSWERED_BEFORE_KILL);
    const burst = targets.map((t, i) => ({ forwarded: t.forwarded - burstStart[i].forwarded, answered: t.answered - burstStart[i].answered, failed: t.failed - burstStart[i].failed }));
    expect(burst[VICTIM].forwarded).toBeGreaterThan(kill!.forwardedBefore);
    expect(burst[VICTIM].failed).toBeGreaterThan(0);
    expect(burst.reduce((n, b) => n + b.forwarded, 0)).toBeGreaterThan(kill!.burstForwardedBefore);
    // Iamport had registered the next period of the renewal the victim was writing when it died.
    expect(kill!.merchantUid).toMatch(/^sub_.+_p3_a1$/);
    // The webhooks were spread over the three: each server answered some of them.
    for (const b of burst) expect(b.answered).toBeGreaterThan(0);
    // Iamport ran every renewal once, and paid it.
    expect(advanced.executed.map((e) => e.merchant_uid).sort()).toEqual(subs.map((s) => renewalUid(s.id, 2)).sort());
    expect(advanced.executed.map((e) => e.status)).toEqual(subs.map(() => "paid"));

    // The three processes' reconciliation (pg-boss, every second) finishes what the dead one and the lost webhooks left.
    await settle("renewals not landed exactly once", () => notRenewedOnce(subs), 90_000);
    await settle("unprocessed webhook events", unprocessedEvents, 30_000);

    await expectEveryRenewalOnce(subs);

    // Iamport sends half of the period-2 webhooks again, three copies of each at once, spread over the three
    // servers (the restarted one among them): nothing changes, a duplicate has no second effect on any process.
    const again = targets.map((t) => ({ ...t }));
    const impUids = (await rows<{ imp_uid: string }>(`select imp_uid from payments where period = 2 order by id limit $1`, [SUBSCRIPTIONS / 2])).map(
      (r) => r.imp_uid,
    );
    for (let i = 0; i < impUids.length; i += 15) {
      const answers = await Promise.all(
        impUids.slice(i, i + 15).map((imp_uid) => emu.post("/__emulator/webhooks/redeliver", { imp_uid, times: 3, concurrency: 3 })),
      );
      expect(answers.map((a) => a.data.webhooks)).toEqual(answers.map(() => ({ delivered: 3, failed: 0, dropped: 0 })));
    }
    for (const [i, t] of targets.entries()) expect(t.answered - again[i].answered).toBeGreaterThan(0);
    // A copy answered 503 (its lock wait ran out while the other copies held the rows) was delivered again by
    // Iamport's retry; the copy that was refused stays recorded unprocessed until reconciliation takes it.
    await settle("unprocessed webhook events after the duplicates", unprocessedEvents, 30_000);
    await expectEveryRenewalOnce(subs);
    // No server process died but the victim.
    expect(serving.map(isRunning)).toEqual([true, true, true]);
  }, 240_000);
});
