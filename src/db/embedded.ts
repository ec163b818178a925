import fs from "node:fs";
import path from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import type { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { acquirePidLock, type HeldLock, LockHeldError } from "./pid-lock";

/** The lock file inside a data directory; PostgreSQL ignores files it does not know there. */
export const DATA_DIR_LOCK_FILE = "billing-server.lock";

/** Another process serves this data directory: two would each see only their own writes. */
export class DataDirectoryInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(`the embedded database directory ${dataDir} is in use by process ${pid}: stop that server first, or give this one another PGLITE_DATA_DIR`);
    this.name = "DataDirectoryInUseError";
  }
}

export interface EmbeddedDatabase {
  /** A postgres:// URL the ordinary driver connects to. Use a pool of ONE connection. */
  url: string;
  close(): Promise<void>;
}

/**
 * Starts PGlite (PostgreSQL compiled to WASM) in this process and serves it on a
 * local TCP port, so the same PostgreSQL driver is used as in production.
 * `dataDir` undefined keeps the data in memory (tests). A directory is
 * locked for this process (DATA_DIR_LOCK_FILE, holding its pid) before PGlite
 * opens it, and unlocked after PGlite closed it.
 */
export async function startEmbeddedDatabase(opts: { dataDir?: string; port?: number }): Promise<EmbeddedDatabase> {
  let lock: HeldLock | undefined;
  const dir = opts.dataDir ? path.resolve(opts.dataDir) : undefined;
  if (dir) {
    fs.mkdirSync(dir, { recursive: true });
    try {
      lock = await acquirePidLock(path.join(dir, DATA_DIR_LOCK_FILE));
    } catch (err) {
      if (err instanceof LockHeldError) throw new DataDirectoryInUseError(dir, err.pid);
      throw err;
    }
  }
  let db: PGlite | undefined;
  try {
    // Loaded lazily: deployments with DATABASE_URL never load the WASM build.
    const { PGlite } = await import("@electric-sql/pglite");
    const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
    db = dir ? await PGlite.create(dir) : await PGlite.create();
    const server: PGLiteSocketServer = new PGLiteSocketServer({
      db,
      port: opts.port ?? 0,
      host: "127.0.0.1",
      // PGlite runs one session: a second connection would interleave transactions.
      maxConnections: 1,
    });
    await server.start();
    const [host, port] = server.getServerConn().split(":");
    const open = db;
    return {
      url: `postgres://postgres:postgres@${host}:${port}/postgres`,
      async close() {
        try {
          await server.stop();
        } finally {
          try {
            await open.close();
          } finally {
            lock?.release();
          }
        }
      },
    };
  } catch (err) {
    await db?.close().catch(() => undefined);
    lock?.release();
    throw err;
  }
}
