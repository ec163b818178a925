/**
 * The start-up warning for cards the in-process emulator does not know: the
 * database keeps its cards, an emulator without its state file forgets their
 * billing keys (every charge on them would fail). On PostgreSQL and on the
 * embedded database on disk.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import axios from "axios";
import { loadConfig } from "../../src/config";
import { createLogger } from "../../src/logger";
import { RunningServer, startServer } from "../../src/server";
import { createTestDatabase, uid } from "../support/harness";

const KEY = "drift-test-key";
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let dir: string;
/** Servers still running: a failed assertion leaves none behind. */
const running = new Set<RunningServer>();

beforeAll(async () => {
  db = await createTestDatabase();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "billing-drift-"));
});
afterAll(async () => {
  for (const server of running) await server.close();
  await db?.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A server with the in-process emulator on a random port, on this file's database; its log lines in `logs`. */
async function start(env: Record<string, string> = {}): Promise<{ server: RunningServer; logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const config = loadConfig({
    NODE_ENV: "test",
    PORT: "0",
    HOST: "127.0.0.1",
    IAMPORT_EMULATOR_PORT: "0",
    API_KEYS: KEY,
    RECONCILE_INTERVAL_SECONDS: "0",
    ...(db ? { DATABASE_URL: db.url } : { PGLITE_DATA_DIR: path.join(dir, "pglite") }),
    ...env,
  });
  const server = await startServer(config, { logger: createLogger({ level: "info", destination: sink }) });
  running.add(server);
  const close = server.close;
  server.close = () => close().finally(() => running.delete(server));
  return { server, logs };
}

async function register(server: RunningServer, customerUid: string): Promise<void> {
  const r = await axios.post(
    `${server.url}/graphql`,
    { query: `mutation { registerCard(input: {customerUid: "${customerUid}", cardNumber: "4242-4242-4242-4242", expiry: "2031-01", birth: "900101"}) { status } }` },
    { headers: { authorization: `Bearer ${KEY}` } },
  );
  expect(r.data).toEqual({ data: { registerCard: { status: "ACTIVE" } } });
}

const driftWarnings = (logs: Record<string, unknown>[]) => logs.filter((l) => String(l.msg).includes("the in-process Iamport emulator does not know"));

it("warns once the server is up when ACTIVE cards in the database are unknown to the emulator; not when it knows them", async () => {
  const stateFile = path.join(dir, "emulator.json");
  const kept = uid("drift_kept");
  // The emulator keeps its state in a file: a restart still knows the card.
  let run = await start({ IAMPORT_EMULATOR_STATE_FILE: stateFile });
  await run.server.checked;
  await register(run.server, kept);
  await run.server.close();

  run = await start({ IAMPORT_EMULATOR_STATE_FILE: stateFile });
  await run.server.checked;
  expect(driftWarnings(run.logs)).toEqual([]);
  await run.server.close();

  // Without it (memory only), the restarted emulator has forgotten the card the database still holds.
  run = await start();
  await run.server.checked;
  const warnings = driftWarnings(run.logs);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({ level: 40, cards: 1, examples: [kept] });
  // The server still started and serves.
  expect((await axios.get(`${run.server.url}/healthz`)).status).toBe(200);
  await run.server.close();
});
