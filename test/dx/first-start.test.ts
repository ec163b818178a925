/**
 * A development server started the way a merchant's engineer starts it (no
 * configuration, in a project directory): the block it prints when ready, the
 * development key kept in ./.data/dev-key across restarts, the warning when
 * the database holds cards the emulator forgot, and `dev:reset`.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import axios from "axios";
import { freePort, isRunning, ROOT, ServerProcess, spawnServer, stopServer } from "../support/processes";

const run = promisify(execFile);
const MAIN = path.join(ROOT, "dist/main.js");
const DEV_RESET = path.join(ROOT, "dist/scripts/dev-reset.js");

let cwd: string;
const started: ServerProcess[] = [];

beforeAll(() => {
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "billing-first-start-"));
});
// A test that failed before stopping its server leaves it holding ./.data: it is stopped before the next test
// starts one (which would otherwise fail on the data directory's lock, whatever it tests).
afterEach(async () => {
  for (const p of started.splice(0)) await stopServer(p);
});
afterAll(() => {
  fs.rmSync(cwd, { recursive: true, force: true });
});

/** A first start on a loaded machine (the embedded database's initdb, the migrations) can take most of a minute and more. */
const DEV_START_TEST_MS = 240_000;

/** The environment of `npm start` with nothing configured (the test's own variables cleared), on free ports. */
async function devEnv(): Promise<{ env: Record<string, string>; port: number; emulatorPort: number }> {
  const port = await freePort();
  const emulatorPort = await freePort();
  // PGLITE_DATA_DIR is the default, in the project directory (cwd), whatever the test's own environment says.
  const env: Record<string, string> = { NODE_ENV: "development", PORT: String(port), IAMPORT_EMULATOR_PORT: String(emulatorPort), LOG_LEVEL: "info", PGLITE_DATA_DIR: "./.data/pglite" };
  for (const name of ["DATABASE_URL", "API_KEYS", "IAMPORT_API_KEY", "IAMPORT_API_SECRET", "IAMPORT_API_URL", "IAMPORT_EMULATOR_STATE_FILE", "CUSTOMER_TOKEN_SECRET"]) env[name] = "";
  return { env, port, emulatorPort };
}

async function waitFor(proc: ServerProcess, text: string | RegExp, timeoutMs = 90_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  const seen = () => proc.output.some((l) => (typeof text === "string" ? l.includes(text) : text.test(l)));
  while (!seen()) {
    if (!isRunning(proc)) throw new Error(`the server exited:\n${proc.output.slice(-40).join("\n")}`);
    if (Date.now() > until) throw new Error(`no ${text} in the output:\n${proc.output.slice(-40).join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startDev(): Promise<{ proc: ServerProcess; port: number; emulatorPort: number }> {
  const { env, port, emulatorPort } = await devEnv();
  const proc = spawnServer(MAIN, env, 400, cwd);
  started.push(proc);
  await waitFor(proc, "Billing server ready on");
  return { proc, port, emulatorPort };
}

/** The ready block: from its first line to the next blank line, as printed. */
function readyBlock(proc: ServerProcess): string[] {
  const start = proc.output.findIndex((l) => l.startsWith("Billing server ready on"));
  const lines = [proc.output[start]];
  for (let i = start + 1; i < proc.output.length && proc.output[i].startsWith("  "); i++) lines.push(proc.output[i]);
  return lines;
}

const keyIn = (block: string[]) => /Authorization: Bearer (dev_[A-Za-z0-9_-]+)/.exec(block.join("\n"))?.[1];

let firstKey: string;

describe("a development server started with nothing configured", () => {
  it("prints one block when ready: GraphiQL, the development key and its file, the emulator's control URL, how to reset", async () => {
    const { proc, port, emulatorPort } = await startDev();
    const block = readyBlock(proc);
    expect(block[0]).toBe(`Billing server ready on http://localhost:${port}`);
    const text = block.join("\n");
    expect(text).toMatch(new RegExp(`GraphiQL\\s+http://localhost:${port}/graphiql`));
    expect(text).toContain("(development key, kept in ./.data/dev-key)");
    expect(text).toContain(`http://127.0.0.1:${emulatorPort}/__emulator`);
    expect(text).toContain("npm run dev:reset");
    // Plain lines for a person, not log records.
    for (const line of block) expect(line.trimStart().startsWith("{")).toBe(false);

    firstKey = keyIn(block)!;
    expect(firstKey).toBeDefined();
    const file = path.join(cwd, ".data/dev-key");
    expect(fs.readFileSync(file, "utf8").trim()).toBe(firstKey);
    expect(fs.statSync(file).mode & 0o077).toBe(0);

    // The printed key is the one /graphql accepts: register a card with it for the restarts below.
    const r = await axios.post(
      `http://127.0.0.1:${port}/graphql`,
      { query: `mutation { registerCard(input: {customerUid: "first_c1", cardNumber: "4242-4242-4242-4242", expiry: "2031-01", birth: "900101"}) { status } }` },
      { headers: { authorization: `Bearer ${firstKey}` }, validateStatus: () => true },
    );
    expect(r.data).toEqual({ data: { registerCard: { status: "ACTIVE" } } });
    await stopServer(proc);
  }, DEV_START_TEST_MS);

  it("keeps the same development key across a restart (read back from ./.data/dev-key)", async () => {
    const { proc, port } = await startDev();
    expect(keyIn(readyBlock(proc))).toBe(firstKey);
    const r = await axios.post(`http://127.0.0.1:${port}/graphql`, { query: "{ card(customerUid: \"first_c1\") { status } }" }, { headers: { authorization: `Bearer ${firstKey}` }, validateStatus: () => true });
    expect(r.status).toBe(200);
    expect(r.data.errors).toBeUndefined();
    await stopServer(proc);
  }, DEV_START_TEST_MS);

  it("warns at start when the database holds cards the emulator does not know, and dev:reset starts both over (refused while the server runs)", async () => {
    // The emulator's state lost, the database kept: the drift a developer would otherwise meet as failing charges.
    fs.rmSync(path.join(cwd, ".data/pglite/iamport-emulator.json"));
    const { proc } = await startDev();
    await waitFor(proc, "ACTIVE card(s) the in-process Iamport emulator does not know");
    const warning = JSON.parse(proc.output.find((l) => l.includes("emulator does not know"))!);
    expect(warning.level).toBe(40);
    expect(warning.cards).toBe(1);
    expect(warning.examples).toEqual(["first_c1"]);
    expect(warning.msg).toContain("npm run dev:reset");

    const env = (await devEnv()).env;
    const { NODE_OPTIONS: _ignored, ...inherited } = process.env;
    const refused = await run(process.execPath, [DEV_RESET], { cwd, env: { ...inherited, ...env } }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toContain(`in use by process ${proc.child.pid}`);
    expect(fs.existsSync(path.join(cwd, ".data/pglite"))).toBe(true);

    await stopServer(proc);
    const { stdout } = await run(process.execPath, [DEV_RESET], { cwd, env: { ...inherited, ...env } });
    expect(stdout).toContain("reset: deleted ./.data/pglite");
    expect(fs.existsSync(path.join(cwd, ".data/pglite"))).toBe(false);
    // The key survives a reset: nothing to copy again.
    expect(fs.readFileSync(path.join(cwd, ".data/dev-key"), "utf8").trim()).toBe(firstKey);
  }, DEV_START_TEST_MS);
});
