/**
 * `npm start` twice in a fresh clone, as a merchant's engineer meets it: the
 * first start builds dist/ with tsc, the second finds dist/ up to date and
 * starts without a build. Both times are reported (README: "Start in two
 * commands"); only the second start's skipped build is asserted.
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort, ROOT } from "../support/processes";

let dir: string;
let clone: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "billing-clone-"));
  clone = path.join(dir, "repo");
  // The committed tree of this checkout, as `git clone` gives it: no dist/, no .data/.
  execFileSync("git", ["clone", "-q", "--no-checkout", ROOT, clone]);
  execFileSync("git", ["-C", clone, "checkout", "-q", execFileSync("git", ["-C", ROOT, "rev-parse", "HEAD"]).toString().trim()]);
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(clone, "node_modules"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 }));

/** Runs `npm start` until the server says it is ready; stops it; returns the seconds it took and its output. */
async function npmStart(): Promise<{ seconds: number; output: string }> {
  const env = {
    PATH: process.env.PATH!,
    HOME: process.env.HOME ?? dir,
    PORT: String(await freePort()),
    IAMPORT_EMULATOR_PORT: String(await freePort()),
    PGLITE_DATA_DIR: path.join(dir, "pglite"),
  };
  const started = Date.now();
  const child: ChildProcess = spawn("npm", ["start"], { cwd: clone, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += String(d)));
  child.stderr!.on("data", (d) => (output += String(d)));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    while (!output.includes("Billing server ready on")) {
      if (child.exitCode !== null) throw new Error(`npm start exited:\n${output}`);
      if (Date.now() - started > 240_000) throw new Error(`npm start was not ready after 240 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { seconds: (Date.now() - started) / 1000, output };
  } finally {
    // npm, sh and node: the whole group, and its exit awaited before the next start takes the data directory.
    try {
      process.kill(-child.pid!, "SIGTERM");
    } catch {
      // already gone
    }
    await exited;
    // npm may exit before the server it started: the server is gone once it released the data directory's lock.
    const lock = path.join(env.PGLITE_DATA_DIR, "billing-server.lock");
    for (const until = Date.now() + 30_000; fs.existsSync(lock) && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
  }
}

it("starts from a fresh clone, then restarts without a build", async () => {
  const first = await npmStart();
  expect(first.output).toContain("building dist/ with tsc");
  const second = await npmStart();
  expect(second.output).toContain("dist/ is up to date");
  expect(second.output).not.toContain("building dist/");
  console.log(`npm start in a fresh clone: first start ${first.seconds.toFixed(1)} s (with the build), restart ${second.seconds.toFixed(1)} s`);
}, 600_000);
