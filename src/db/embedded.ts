import fs from "node:fs";
import path from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import type { PGLiteSocketServer } from "@electric-sql/pglite-socket";

export interface EmbeddedDatabase {
  /** A postgres:// URL the ordinary driver connects to. Use a pool of ONE connection. */
  url: string;
  close(): Promise<void>;
}

/**
 * Starts PGlite (PostgreSQL compiled to WASM) in this process and serves it on a
 * local TCP port, so the same PostgreSQL driver is used as in production.
 * `dataDir` undefined keeps the data in memory (tests).
 */
export async function startEmbeddedDatabase(opts: { dataDir?: string; port?: number }): Promise<EmbeddedDatabase> {
  // Loaded lazily: deployments with DATABASE_URL never load the WASM build.
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  let db: PGlite;
  if (opts.dataDir) {
    const dir = path.resolve(opts.dataDir);
    fs.mkdirSync(dir, { recursive: true });
    db = await PGlite.create(dir);
  } else {
    db = await PGlite.create();
  }
  const server: PGLiteSocketServer = new PGLiteSocketServer({
    db,
    port: opts.port ?? 0,
    host: "127.0.0.1",
    // PGlite runs one session: a second connection would interleave transactions.
    maxConnections: 1,
  });
  await server.start();
  const [host, port] = server.getServerConn().split(":");
  return {
    url: `postgres://postgres:postgres@${host}:${port}/postgres`,
    async close() {
      await server.stop();
      await db.close();
    },
  };
}
