/**
 * The benchmark's embedded PostgreSQL (PGlite), for runs without DATABASE_URL.
 *
 * PGlite is a single session: like the server's own embedded mode, its socket
 * takes ONE client connection at a time (the server, the raw reference or the
 * seed handler, one after the other, each with a pool of one). The benchmark's
 * own SQL (setup, bulk load, checks) goes through a small HTTP endpoint that
 * runs it in this process, and is only sent while that client is idle;
 * GET on it answers the socket's connection count.
 *
 * Prints `READY {"url": ..., "control": ...}` once listening.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

async function main(): Promise<void> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const db = await PGlite.create();
  const socket = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1", maxConnections: 1 });
  await socket.start();
  const [host, port] = socket.getServerConn().split(":");

  const control = http.createServer((req, res) => {
    if (req.method === "GET") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(socket.getStats()));
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        try {
          const { sql, params, exec } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { sql: string; params?: unknown[]; exec?: boolean };
          const rows = exec ? (await db.exec(sql)).flatMap((r) => r.rows) : (await db.query(sql, params ?? [])).rows;
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ rows }, (_k, v) => (typeof v === "bigint" ? String(v) : v)));
        } catch (e) {
          res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: (e as Error).message }));
        }
      })();
    });
  });
  await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));
  const controlPort = (control.address() as AddressInfo).port;
  console.log(`READY ${JSON.stringify({ url: `postgres://postgres:postgres@${host}:${port}/postgres`, control: `http://127.0.0.1:${controlPort}/sql` })}`);

  const stop = () => {
    control.close();
    void socket
      .stop()
      .then(() => db.close())
      .finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e: unknown) => {
  console.error(`embedded database failed: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
