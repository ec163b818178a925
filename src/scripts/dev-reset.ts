import fs from "node:fs";
import path from "node:path";
import { ConfigError, loadConfig } from "../config";
import { DATA_DIR_LOCK_FILE } from "../db/embedded";
import { acquirePidLock, LockHeldError } from "../db/pid-lock";
import { EMULATOR_STATE_FILE, inProcessEmulatorStateFile } from "../dev-state";

/**
 * `npm run dev:reset`: starts development over by deleting the embedded
 * database (PGLITE_DATA_DIR) and the in-process emulator's state together, so
 * that the two agree again. It takes the data directory's lock first, so it
 * refuses while a server uses the directory, and no server opens it meanwhile.
 * The development key (./.data/dev-key) is kept.
 */
async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
  if (config.env === "production") {
    console.error("dev:reset refuses to run with NODE_ENV=production");
    return 1;
  }
  if (config.databaseUrl) {
    // Resetting the emulator alone would leave the database's cards without billing keys.
    console.error("dev:reset resets the embedded database, but DATABASE_URL is set: drop and recreate that database yourself, then delete the emulator's state file");
    return 1;
  }
  const dataDir = path.resolve(config.pgliteDataDir);
  const rel = path.relative(dataDir, process.cwd());
  if (rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel))) {
    // PGLITE_DATA_DIR=. (or a parent): emptying it would delete the project it is run from.
    console.error(`dev:reset refuses: PGLITE_DATA_DIR=${config.pgliteDataDir} is the working directory or contains it; point it at a directory of its own`);
    return 1;
  }
  const stateFile = path.resolve(inProcessEmulatorStateFile(config, true) ?? path.join(dataDir, EMULATOR_STATE_FILE));
  if (!fs.existsSync(dataDir) && !fs.existsSync(stateFile)) {
    console.log(`nothing to reset: ${config.pgliteDataDir} does not exist`);
    return 0;
  }
  let lock;
  try {
    lock = await acquirePidLock(path.join(dataDir, DATA_DIR_LOCK_FILE));
  } catch (err) {
    if (err instanceof LockHeldError) {
      console.error(`${config.pgliteDataDir} is in use by process ${err.pid} (a running server): stop it first, then run dev:reset again`);
      return 1;
    }
    throw err;
  }
  try {
    fs.rmSync(stateFile, { force: true });
    // Everything but the lock, which goes last with the directory.
    for (const entry of fs.readdirSync(dataDir)) {
      if (entry !== DATA_DIR_LOCK_FILE) fs.rmSync(path.join(dataDir, entry), { recursive: true, force: true });
    }
  } finally {
    lock.release();
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
  console.log(`reset: deleted ${config.pgliteDataDir} (the embedded database) and the emulator's state; the next start begins empty`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`dev:reset failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
