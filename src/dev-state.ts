import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Config } from "./config";

/*
 * What a development server keeps on disk between starts: its generated API
 * key, and the in-process emulator's state beside the embedded database.
 */

/** The in-process emulator's state file inside the embedded data directory (PostgreSQL ignores files it does not know there). */
export const EMULATOR_STATE_FILE = "iamport-emulator.json";

/**
 * Where the in-process emulator keeps its state: IAMPORT_EMULATOR_STATE_FILE,
 * else beside an embedded database on disk outside tests (the emulator's keys
 * and schedules belong with the database that refers to them), else nowhere.
 */
export function inProcessEmulatorStateFile(config: Config, embeddedOnDisk: boolean): string | undefined {
  if (config.emulator.stateFile) return config.emulator.stateFile;
  return embeddedOnDisk && config.env !== "test" ? path.join(path.resolve(config.pgliteDataDir), EMULATOR_STATE_FILE) : undefined;
}

/** Where a development server keeps its generated API key (git-ignored with the rest of ./.data). */
export const DEV_KEY_FILE = "./.data/dev-key";

const DEV_KEY = /^dev_[A-Za-z0-9_-]{16,}$/;

export function generateDevKey(): string {
  return `dev_${crypto.randomBytes(18).toString("base64url")}`;
}

/**
 * The development key kept in `file`: read back when the file holds one, else
 * generated and written there (readable by its owner only). A restart keeps
 * the key, so scripts and GraphiQL tabs that use it keep working; deleting the
 * file makes a new one.
 */
export function loadOrCreateDevKey(file: string = DEV_KEY_FILE): { key: string; file: string; created: boolean } {
  const target = path.resolve(file);
  const existing = readKey(target);
  if (existing) return { key: existing, file: target, created: false };
  const key = generateDevKey();
  fs.mkdirSync(path.dirname(target), { recursive: true });
  try {
    // Exclusive create: two servers starting together (on PostgreSQL, with no data-dir lock) end up with one key.
    fs.writeFileSync(target, `${key}\n`, { flag: "wx", mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const other = readKey(target);
    if (other) return { key: other, file: target, created: false };
    // A file that holds no key (edited by hand): replaced.
    fs.writeFileSync(target, `${key}\n`, { mode: 0o600 });
  }
  return { key, file: target, created: true };
}

function readKey(file: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const key = text.trim();
  return DEV_KEY.test(key) ? key : undefined;
}
