/**
 * `npm run dev:reset` deletes the embedded database's directory: it refuses a
 * PGLITE_DATA_DIR that would make it delete the project it runs in.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ROOT } from "../support/processes";

const run = promisify(execFile);
const DEV_RESET = path.join(ROOT, "dist/scripts/dev-reset.js");

let cwd: string;
beforeAll(() => {
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), "billing-dev-reset-"));
  fs.mkdirSync(path.join(cwd, "project"));
  fs.writeFileSync(path.join(cwd, "project", "keep.txt"), "the merchant's work\n");
});
afterAll(() => fs.rmSync(cwd, { recursive: true, force: true }));

async function devReset(dataDir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const { NODE_OPTIONS: _ignored, ...inherited } = process.env;
  const env = { ...inherited, NODE_ENV: "development", DATABASE_URL: "", IAMPORT_EMULATOR_STATE_FILE: "", PGLITE_DATA_DIR: dataDir };
  return run(process.execPath, [DEV_RESET], { cwd: path.join(cwd, "project"), env }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

it.each([".", "..", "  "])("refuses PGLITE_DATA_DIR=%j and deletes nothing", async (dataDir) => {
  const r = await devReset(dataDir);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("PGLITE_DATA_DIR");
  expect(fs.readFileSync(path.join(cwd, "project", "keep.txt"), "utf8")).toBe("the merchant's work\n");
});

it("resets a data directory of its own", async () => {
  fs.mkdirSync(path.join(cwd, "project", "pg"));
  fs.writeFileSync(path.join(cwd, "project", "pg", "PG_VERSION"), "17\n");
  const r = await devReset("./pg");
  expect(r).toMatchObject({ code: 0, stderr: "" });
  expect(r.stdout).toContain("reset: deleted ./pg");
  expect(fs.existsSync(path.join(cwd, "project", "pg"))).toBe(false);
  expect(fs.existsSync(path.join(cwd, "project", "keep.txt"))).toBe(true);
});
