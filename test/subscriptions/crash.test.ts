import path from "node:path";
import axios from "axios";
import { Client } from "pg";
import { RunningEmulator, startEmulator } from "#iamport-emulator";
import { adminDatabaseUrl, createTestDatabase, GOOD_CARD, REGISTER_CARD } from "../support/harness";
import { freePort, ROOT, ServerProcess, spawnServer, stopServer, waitHealthy } from "../support/processes";
import { START, Sub, waitFor } from "./helpers";

/*
 * A server process killed with SIGKILL in the middle of a burst of renewals,
 * then a second process on the same database: after its reconciliation every
 * renewal has landed exactly once. The server runs as a real child process
 * from the compiled code (decorator metadata needs tsc), so the database must
 * outlive it: this needs PostgreSQL (TEST_DATABASE_URL or DATABASE_URL); the
 * embedded database lives inside the process that is killed.
 */

/** The suite's build: jest's global setup compiles src/ to dist/ when stale, and a build with type errors stops the suite there. */
const MAIN = path.join(ROOT, "dist", "main.js");
const API_KEY = "crash-test-key";
const SUBSCRIPTIONS = 30;

const withPostgres = adminDatabaseUrl() ? describe : describe.skip;

withPostgres("a server killed with SIGKILL in the middle of a burst of renewals", () => {
  let emulator: RunningEmulator;
  let db: { url: string; drop: () => Promise<void> };
  let pg: Client;
  let port: number;
  let url: string;
  let env: Record<string, string>;
  const procs: ServerProcess[] = [];

  beforeAll(async () => {
    db = (await createTestDatabase())!;
    pg = new Client({ connectionString: db.url });
    await pg.connect();
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // Few webhooks at a time, so that the burst is still going when the process dies.
    emulator = await startEmulator({ port: 0, autoRunIntervalMs: 0, webhookUrl: `${url}/iamport-webhook`, webhookConcurrency: 3, timeoutHoldMs: 2_000 });
    env = {
      NODE_ENV: "test",
      PORT: String(port),
      HOST: "127.0.0.1",
      PUBLIC_URL: url,
      DATABASE_URL: db.url,
      IAMPORT_API_URL: emulator.url,
      IAMPORT_API_KEY: "imp_apikey",
      IAMPORT_API_SECRET: "emulator_secret",
      IAMPORT_TIMEOUT_MS: "1000",
      API_KEYS: API_KEY,
      RECONCILE_INTERVAL_SECONDS: "1",
      LOG_LEVEL: "warn",
      RATE_LIMIT_PER_MINUTE: "0",
      RATE_LIMIT_PUBLIC_PER_MINUTE: "0",
    };
  }, 240_000);

  afterAll(async () => {
    for (const p of procs) await stopServer(p);
    await pg?.end();
    await emulator?.close();
    await db?.drop();
  });

  async function gql<T>(query: string, variables: Record<string, unknown>): Promise<T> {
    const r = await axios.post(`${url}/graphql`, { query, variables }, { headers: { authorization: `Bearer ${API_KEY}` }, timeout: 20_000 });
    if (r.data.errors) throw new Error(JSON.stringify(r.data.errors));
    return r.data.data as T;
  }

  async function rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await pg.query(sql, params)).rows as T[];
  }

  async function unprocessedEvents(): Promise<number> {
    return Number((await rows<{ n: string }>(`select count(*) as n from webhook_events where processed_at is null`))[0].n);
  }

  /** Every subscription renewed exactly once: one PAID period 2, one SCHEDULED period 3, nothing else open. */
  async function allRenewedOnce(subs: Sub[]): Promise<boolean> {
    const r = await rows<{ subscription_id: string; period: number; status: string; n: string }>(
      `select subscription_id, period, status, count(*) as n from payments where subscription_id is not null group by 1, 2, 3`,
    );
    // An empty list would be "all renewed" vacuously.
    return subs.length === SUBSCRIPTIONS && subs.every((s) => {
      const mine = r.filter((x) => x.subscription_id === s.id);
      const key = mine.map((x) => `${x.period}:${x.status}:${x.n}`).sort();
      return JSON.stringify(key) === JSON.stringify(["1:PAID:1", "2:PAID:1", "3:SCHEDULED:1"]);
    });
  }

  /** Runs a test's server processes and stops every one of them when it ends: each test starts from none. */
  async function withServers(run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } finally {
      for (const p of procs.splice(0)) await stopServer(p);
    }
  }

  it("lands every renewal exactly once after a restart and reconciliation", () => withServers(async () => {
    const first = spawnServer(MAIN, env);
    procs.push(first);
    await waitHealthy(url, first);

    const subs: Sub[] = [];
    for (let i = 0; i < SUBSCRIPTIONS; i += 6) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(6, SUBSCRIPTIONS - i) }, async (_, j) => {
          const customerUid = `crash_${i + j}_${Date.now().toString(36)}`;
          await gql(REGISTER_CARD, { input: { customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12" } });
          return (await gql<{ startSubscription: Sub }>(START, { input: { customerUid, name: "Plan", amount: 9900, interval: "MONTH" } }))
            .startSubscription;
        }),
      );
      subs.push(...batch);
    }
    expect(subs.map((s) => s.status)).toEqual(Array(SUBSCRIPTIONS).fill("ACTIVE"));
    const emu = axios.create({ baseURL: emulator.url, validateStatus: () => true });
    const paymentsBefore = (await emu.get("/__emulator/health")).data.payments as number;
    expect(paymentsBefore).toBe(SUBSCRIPTIONS);

    // All 30 renewals fall due at once; the process dies a few webhooks into the burst.
    const due = Math.max(...subs.map((s) => Math.floor(new Date(s.nextPaymentAt!).getTime() / 1000)));
    const now = (await emu.get("/__emulator/clock")).data.now as number;
    const advancing = emu.post("/__emulator/clock/advance", { seconds: due - now + 10 });
    await waitFor(async () => {
      const [{ n }] = await rows<{ n: string }>(`select count(*) as n from webhook_events where source = 'schedule-callback'`);
      return Number(n) >= 4;
    }, 30_000, 5);
    first.child.kill("SIGKILL");
    await first.exited;
    const advanced = (await advancing).data;
    expect(advanced.executed).toHaveLength(SUBSCRIPTIONS);
    expect(advanced.executed.map((e: { status: string }) => e.status)).toEqual(Array(SUBSCRIPTIONS).fill("paid"));
    expect(advanced.webhooks.failed).toBeGreaterThan(0);
    // The burst was really cut short: some renewals were not recorded by the dead process.
    expect(await allRenewedOnce(subs)).toBe(false);

    // A new process on the same database and port; its reconciliation (pg-boss, every second) finishes the work.
    const second = spawnServer(MAIN, env);
    procs.push(second);
    await waitHealthy(url, second);
    await waitFor(() => allRenewedOnce(subs), 90_000, 250);

    // Iamport agrees: one charge per subscription and period, one pending schedule per customer.
    expect((await emu.get("/__emulator/health")).data.payments).toBe(2 * SUBSCRIPTIONS);
    const token = (await emu.post("/users/getToken", { imp_key: "imp_apikey", imp_secret: "emulator_secret" })).data.response.access_token;
    const clock = (await emu.get("/__emulator/clock")).data.now as number;
    for (const s of subs) {
      const list = await emu.get(`/subscribe/payments/schedule/customers/${s.customerUid}`, {
        headers: { Authorization: token },
        // Iamport lists at most three months at a time: the executed renewal and the next one are within that.
        params: { from: clock - 40 * 86_400, to: clock + 40 * 86_400 },
      });
      const schedules = list.data.response.list as { merchant_uid: string; schedule_status: string }[];
      expect(schedules.map((x) => `${x.merchant_uid}:${x.schedule_status}`).sort()).toEqual(
        [`sub_${s.id}_p2_a1:executed`, `sub_${s.id}_p3_a1:scheduled`].sort(),
      );
    }
    const states = await rows<{ status: string; n: string }>(`select status, count(*) as n from subscriptions group by status`);
    expect(states).toEqual([{ status: "ACTIVE", n: String(SUBSCRIPTIONS) }]);
    // Webhook events the dead process recorded but never finished are processed too (after their grace period).
    await waitFor(async () => (await unprocessedEvents()) === 0, 30_000, 250);
  }), 240_000);

  it("leaves every started subscription paid once with its next schedule when killed in a burst of first charges", () => withServers(async () => {
    const running = spawnServer(MAIN, env);
    procs.push(running);
    await waitHealthy(url, running);
    const emu = axios.create({ baseURL: emulator.url, validateStatus: () => true });
    const paymentsBefore = (await emu.get("/__emulator/health")).data.payments as number;
    const [{ n: subsBefore }] = await rows<{ n: string }>(`select count(*) as n from subscriptions`);
    const customers = Array.from({ length: SUBSCRIPTIONS }, (_, i) => `burst_${i}_${Date.now().toString(36)}`);
    for (const customerUid of customers) {
      await gql(REGISTER_CARD, { input: { customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12" } });
    }

    // 30 subscriptions started at once; the process dies once a few first charges went through.
    const starting = customers.map((customerUid) =>
      gql(START, { input: { customerUid, name: "Plan", amount: 4900, interval: "WEEK" } }).then(
        () => "ok",
        () => "cut",
      ),
    );
    await waitFor(async () => {
      const [{ n }] = await rows<{ n: string }>(`select count(*) as n from payments where status = 'PAID' and period = 1 and merchant_uid like 'sub_%' and amount = 4900`);
      return Number(n) >= 3;
    }, 30_000, 5);
    running.child.kill("SIGKILL");
    await running.exited;
    const answers = await Promise.all(starting);
    expect(answers).toContain("cut");

    const next = spawnServer(MAIN, env);
    procs.push(next);
    await waitHealthy(url, next);
    const started = async () =>
      rows<{ id: string; status: string }>(`select id, status from subscriptions where amount = 4900 order by id`);
    // Charges cut short are settled by merchant_uid once their grace period is over.
    await waitFor(async () => {
      const subs = await started();
      return subs.length > 0 && subs.every((x) => x.status === "ACTIVE" || x.status === "CANCELED");
    }, 90_000, 250);
    const subs = await started();
    // The burst started some subscriptions (the kill came after a few first charges were paid).
    expect(subs.length).toBeGreaterThanOrEqual(3);
    expect(Number(subsBefore) + subs.length).toBe(Number((await rows<{ n: string }>(`select count(*) as n from subscriptions`))[0].n));
    await waitFor(async () => {
      const r = await rows<{ subscription_id: string; period: number; status: string }>(
        `select subscription_id, period, status from payments where amount = 4900 and subscription_id is not null`,
      );
      return subs.every((sub) => {
        const mine = r.filter((x) => x.subscription_id === sub.id).map((x) => `${x.period}:${x.status}`).sort();
        return JSON.stringify(mine) === JSON.stringify(["1:PAID", "2:SCHEDULED"]);
      });
    }, 60_000, 250);
    expect(subs.map((x) => x.status)).toEqual(subs.map(() => "ACTIVE"));
    // Iamport charged each started subscription exactly once, and nothing else.
    expect((await emu.get("/__emulator/health")).data.payments).toBe(paymentsBefore + subs.length);
  }), 240_000);
});
