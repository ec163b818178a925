import { ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import axios from "axios";

const root = path.resolve(__dirname, "../..");

/** A free port picked by the OS. */
async function freePort(): Promise<number> {
  const net = await import("node:net");
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * `npm start` exactly as the README says, in this tree: the suite's global setup has built dist/,
 * so it starts without a build. (A build here, while other test files run dist/main.js, would
 * rewrite it under them: the build on a first start is test/dx/npm-start-twice.test.ts's, in a
 * clone of its own.)
 */
describe("npm start with no environment", () => {
  let child: ChildProcess;
  /** Resolves when npm has exited and every process holding its output (sh, node) has too. */
  let closed: Promise<void>;
  let gone = false;
  let output = "";
  let port: number;
  let dataDir: string;

  beforeAll(async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { stale } = require(path.join(root, "scripts/build-if-stale.js")) as { stale(): boolean };
    if (stale()) throw new Error("dist/ is older than src/ (changed since the suite's global setup built it): npm start would rebuild it under the other test files");
    port = await freePort();
    const emulatorPort = await freePort();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "billing-start-"));
    // Only PATH and the ports (so parallel test files do not collide): no database, no Iamport key, no API key.
    child = spawn("npm", ["start"], {
      cwd: root,
      detached: true,
      env: { PATH: process.env.PATH, LOG_LEVEL: "debug", PORT: String(port), IAMPORT_EMULATOR_PORT: String(emulatorPort), PGLITE_DATA_DIR: dataDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    closed = new Promise((resolve) =>
      child.once("close", () => {
        gone = true;
        resolve();
      }),
    );
    child.stdout!.on("data", (d) => (output += String(d)));
    child.stderr!.on("data", (d) => (output += String(d)));
    const deadline = Date.now() + 100_000;
    while (!output.includes("Billing server ready on")) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 120_000);

  afterAll(async () => {
    // Whatever is left of the group (npm, sh, node) is stopped, and awaited until the last of them has
    // closed its output (npm's exit alone says nothing of the server's) before the data goes.
    if (child) {
      if (!gone) {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // the group is already gone
        }
      }
      await closed;
    }
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("announces the embedded database, the emulator and a development key", () => {
    expect(output).toContain("dist/ is up to date with src/: starting without a build");
    expect(output).toContain("using the embedded PostgreSQL (PGlite)");
    expect(output).toContain("using the Iamport emulator in-process");
    expect(output).toMatch(/Authorization: Bearer dev_[A-Za-z0-9_-]+/);
  });

  it("serves /healthz and /readyz", async () => {
    const health = await axios.get(`http://127.0.0.1:${port}/healthz`);
    expect(health.data).toEqual({ status: "ok" });
    const ready = await axios.get(`http://127.0.0.1:${port}/readyz`);
    expect(ready.data.checks).toEqual({ database: "ok", migrations: "ok", iamport: "ok" });
  });

  it("registers a card and charges it through GraphQL with the printed key", async () => {
    const key = /Authorization: Bearer (dev_[A-Za-z0-9_-]+)/.exec(output)![1];
    const gql = (query: string) =>
      axios.post(`http://127.0.0.1:${port}/graphql`, { query }, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.data);
    const reg = await gql(
      `mutation { registerCard(input: {customerUid: "start_c1", cardNumber: "4242424242424242", expiry: "2031-01", birth: "900101"}) { customerUid status cardNumberMasked } }`,
    );
    expect(reg.data.registerCard).toMatchObject({ customerUid: "start_c1", status: "ACTIVE" });
    const charge = await gql(`mutation { chargeAgain(input: {customerUid: "start_c1", amount: 8900, name: "first"}) { status paidAmount impUid } }`);
    expect(charge.data.chargeAgain).toMatchObject({ status: "PAID", paidAmount: 8900 });
  });

  it("shuts down gracefully on SIGTERM", async () => {
    // The signal goes to the whole process group, as a terminal's Ctrl-C or a container stop would.
    process.kill(-child.pid!, "SIGTERM");
    // Every process of the group ends by itself (the SIGKILL in afterAll is for a run that failed earlier).
    await closed;
    expect(output).toContain("shutting down: finishing in-flight requests");
    expect(output).toContain('"msg":"stopped"');
  });
});
