import { ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import axios from "axios";

/*
 * Two `npm start` in one folder share one embedded data directory. The server
 * runs as a real child process from the compiled code (dist/, built by the
 * suite's globalSetup), on the embedded database whatever the suite uses, and
 * with the in-process emulator as in development.
 */

const ROOT = path.resolve(__dirname, "../..");
const MAIN = path.join(ROOT, "dist", "main.js");
const API_KEY = "lock-test-key";
const LOCK_FILE = "billing-server.lock";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface ServerProcess {
  child: ChildProcess;
  url: string;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
}

const procs: ServerProcess[] = [];

async function spawnServer(dataDir: string): Promise<ServerProcess> {
  const port = await freePort();
  const emulatorPort = await freePort();
  // No DATABASE_URL: the embedded database, whatever the suite runs on.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    NODE_ENV: "development",
    PORT: String(port),
    HOST: "127.0.0.1",
    IAMPORT_EMULATOR_PORT: String(emulatorPort),
    PGLITE_DATA_DIR: dataDir,
    API_KEYS: API_KEY,
    RECONCILE_INTERVAL_SECONDS: "0",
    LOG_LEVEL: "info",
  };
  const child = spawn(process.execPath, [MAIN], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  const proc: ServerProcess = {
    child,
    url: `http://127.0.0.1:${port}`,
    stdout: [],
    stderr: [],
    exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
  };
  child.stdout!.on("data", (d) => proc.stdout.push(...String(d).split("\n").filter(Boolean)));
  child.stderr!.on("data", (d) => proc.stderr.push(...String(d).split("\n").filter(Boolean)));
  procs.push(proc);
  return proc;
}

async function waitHealthy(proc: ServerProcess): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`the server exited:\n${[...proc.stdout, ...proc.stderr].slice(-40).join("\n")}`);
    const r = await axios.get(`${proc.url}/healthz`, { validateStatus: () => true, timeout: 1000 }).catch(() => null);
    if (r?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`the server did not start:\n${proc.stdout.slice(-40).join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function gql<T>(proc: ServerProcess, query: string): Promise<T> {
  const r = await axios.post(`${proc.url}/graphql`, { query }, { headers: { authorization: `Bearer ${API_KEY}` }, timeout: 30_000 });
  if (r.data.errors) throw new Error(JSON.stringify(r.data.errors));
  return r.data.data as T;
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

describe("one server process per embedded data directory", () => {
  let tmp: string;
  let dataDir: string;
  let first: ServerProcess;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "billing-lock-"));
    dataDir = path.join(tmp, "pglite");
    first = await spawnServer(dataDir);
    await waitHealthy(first);
  }, 180_000);

  afterAll(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill("SIGKILL");
        await p.exited;
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("holds the lock with its pid while it runs", () => {
    expect(fs.readFileSync(path.join(dataDir, LOCK_FILE), "utf8").trim()).toBe(String(first.child.pid));
  });

  it("refuses a second process on the same directory with one line naming the first, and the first keeps serving", async () => {
    await gql(first, `mutation { registerCard(input: {customerUid: "lock_c1", cardNumber: "4242-4242-4242-4242", expiry: "2031-12", birth: "900101"}) { status } }`);

    const second = await spawnServer(dataDir);
    const code = await second.exited;
    expect(code).not.toBe(0);
    expect(second.stderr).toHaveLength(1);
    expect(second.stderr[0]).toContain(`${path.resolve(dataDir)} is in use by process ${first.child.pid}`);

    const health = await axios.get(`${first.url}/healthz`);
    expect(health.status).toBe(200);
    const { card } = await gql<{ card: { status: string } }>(first, `{ card(customerUid: "lock_c1") { status } }`);
    expect(card.status).toBe("ACTIVE");
    expect(fs.readFileSync(path.join(dataDir, LOCK_FILE), "utf8").trim()).toBe(String(first.child.pid));
  }, 120_000);

  it("releases the lock on SIGTERM", async () => {
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(fs.existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
  });

  it("takes over a lock left by a dead process, and the restarted emulator still knows the card", async () => {
    const dead = deadPid();
    fs.writeFileSync(path.join(dataDir, LOCK_FILE), `${dead}\n`);

    const next = await spawnServer(dataDir);
    await waitHealthy(next);
    expect(fs.readFileSync(path.join(dataDir, LOCK_FILE), "utf8").trim()).toBe(String(next.child.pid));

    // The database remembers the card, and so does the emulator: a charge goes through.
    const { chargeAgain } = await gql<{ chargeAgain: { status: string; failReason: string | null } }>(
      next,
      `mutation { chargeAgain(input: {customerUid: "lock_c1", amount: 1000, name: "after restart"}) { status failReason } }`,
    );
    expect(chargeAgain).toEqual({ status: "PAID", failReason: null });

    next.child.kill("SIGTERM");
    expect(await next.exited).toBe(0);
    expect(fs.existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
  }, 180_000);
});
