import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import axios from "axios";
import { RunningEmulator, startEmulator } from "#iamport-emulator";
import { loadConfig } from "../../src/config";
import { createLogger } from "../../src/logger";
import { type RunningServer, startServer } from "../../src/server";
import { API_KEY, createTestDatabase, GOOD_CARD, REGISTER_CARD, uid } from "../support/harness";
import { waitFor } from "./helpers";

/*
 * The trial notice of a subscription whose server was down at the notice's
 * due time: the server is stopped before it, Iamport's clock passes it, and
 * a new server on the same database catches up through its reconciliation
 * queue (not a test's call), sending the notice once. On both databases: a
 * PGlite data directory outlives the server that wrote it, as PostgreSQL does.
 */
const DAY = 86_400;
let emulator: RunningEmulator;
let db: { url: string; drop: () => Promise<void> } | undefined;
let dataDir: string | undefined;
const servers: RunningServer[] = [];

beforeAll(async () => {
  emulator = await startEmulator({ port: 0, autoRunIntervalMs: 0 });
  db = await createTestDatabase();
  if (!db) dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "billing-notice-downtime-"));
});
afterAll(async () => {
  for (const s of servers) await s.close().catch(() => undefined);
  await emulator?.close();
  await db?.drop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

/** A server on the test's database; `reconcileSeconds` 0 runs no reconciliation by itself. */
async function serve(reconcileSeconds: number): Promise<RunningServer> {
  const config = loadConfig({
    NODE_ENV: "test",
    PORT: "0",
    HOST: "127.0.0.1",
    API_KEYS: API_KEY,
    RECONCILE_INTERVAL_SECONDS: String(reconcileSeconds),
    IAMPORT_TIMEOUT_MS: "5000",
    RATE_LIMIT_PER_MINUTE: "0",
    RATE_LIMIT_PUBLIC_PER_MINUTE: "0",
    ...(db ? { DATABASE_URL: db.url } : { PGLITE_DATA_DIR: dataDir! }),
  });
  const logger = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const server = await startServer(config, { logger, iamportUrl: emulator.url });
  servers.push(server);
  emulator.setWebhookUrl(`${server.url}/iamport-webhook`);
  return server;
}

async function gql<T>(server: RunningServer, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const r = await axios.post(`${server.url}/graphql`, { query, variables }, { headers: { authorization: `Bearer ${API_KEY}` }, timeout: 20_000 });
  if (r.data.errors) throw new Error(JSON.stringify(r.data.errors));
  return r.data.data as T;
}

interface NoticeEvent {
  data: { notice: { kind: string; dueAt: string; sentAt: string }; trialEnd: string; subscription: { id: string; status: string } };
}
async function trialNotices(server: RunningServer, subscriptionId: string): Promise<NoticeEvent[]> {
  const r = await gql<{ events: { nodes: NoticeEvent[] } }>(server, `query($s: ID) { events(subscriptionId: $s, type: "subscription.trial_ending", first: 50) { nodes { data } } }`, {
    s: subscriptionId,
  });
  return r.events.nodes;
}

it("the trial notice due while the server was down is sent once by the next server's reconciliation queue", async () => {
  const first = await serve(0);
  const customerUid = uid("down");
  await gql(first, REGISTER_CARD, { input: { customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12" } });
  const { startSubscription: trial } = await gql<{ startSubscription: { id: string; trialEnd: string } }>(
    first,
    `mutation($c: String!) { startSubscription(input: {customerUid: $c, name: "Trial", amount: 8900, interval: MONTH, trialDays: 10}) { id trialEnd } }`,
    { c: customerUid },
  );
  const due = Math.floor(new Date(trial.trialEnd).getTime() / 1000) - 7 * DAY;
  const now = (await axios.get(`${emulator.url}/__emulator/clock`)).data.now as number;
  expect(due).toBeGreaterThan(now);
  // The first server sweeps before the due time (nothing to send yet), then stops.
  await first.reconciler.runOnce();
  expect(await trialNotices(first, trial.id)).toEqual([]);
  await first.close();

  // Down from before the due time until two days after it.
  await axios.post(`${emulator.url}/__emulator/clock/advance`, { seconds: due + 2 * DAY - now });
  const back = (await axios.get(`${emulator.url}/__emulator/clock`)).data.now as number;

  const second = await serve(1);
  // Its reconciliation queue catches up by itself.
  const sent = (await waitFor(async () => {
    const n = await trialNotices(second, trial.id);
    return n.length > 0 ? n : undefined;
  }, 60_000))!;
  expect(sent.map((e) => e.data.notice.dueAt)).toEqual([new Date(due * 1000).toISOString()]);
  expect(sent[0].data).toMatchObject({ notice: { kind: "TRIAL_ENDING" }, trialEnd: trial.trialEnd, subscription: { id: trial.id, status: "TRIALING" } });
  expect(Math.floor(new Date(sent[0].data.notice.sentAt).getTime() / 1000)).toBeGreaterThanOrEqual(back);
  // Later sweeps (the queue's and one more here) send nothing more.
  await second.reconciler.runOnce();
  expect(await trialNotices(second, trial.id)).toHaveLength(1);
  const shown = await gql<{ subscription: { status: string; notices: { kind: string; sentAt: string | null }[] } }>(
    second,
    `query($id: ID!) { subscription(id: $id) { status notices { kind sentAt } } }`,
    { id: trial.id },
  );
  expect(shown.subscription).toEqual({ status: "TRIALING", notices: [{ kind: "TRIAL_ENDING", sentAt: expect.any(String) }] });
  expect(Math.floor(new Date(shown.subscription.notices[0].sentAt!).getTime() / 1000)).toBe(Math.floor(new Date(sent[0].data.notice.sentAt).getTime() / 1000));
  // Two servers started on one database (migrations, pg-boss), on a loaded machine.
}, 300_000);
