/**
 * The database of a benchmark run: a fresh database created (and dropped at the
 * end) on the PostgreSQL server of DATABASE_URL, or an embedded PGlite in a
 * child process when DATABASE_URL is not set.
 */
import fs from "node:fs";
import path from "node:path";
import { Client, Pool } from "pg";
import { httpJson, sleep } from "./http";
import { startChild, type Child } from "./proc";

export interface BenchDb {
  kind: "postgres" | "embedded";
  /** What the server, the raw reference and the seed handler get as DATABASE_URL. */
  url: string;
  /** Their pool size: the embedded database takes one connection at a time. */
  poolMax: number;
  /**
   * True when the benchmark may query while a server is working (PostgreSQL).
   * The embedded database is queried only while its one client is idle.
   */
  concurrentQueries: boolean;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Waits until no client holds a connection (embedded: before the next client connects). */
  waitIdle(): Promise<void>;
  /** Several statements, no parameters. */
  exec(sql: string): Promise<void>;
  describe(): string;
  /**
   * The processes whose CPU time is the database's: the local PostgreSQL's (every process named
   * `postgres`: postmaster, backends, WAL writer, ...), none for a remote server, or the embedded
   * database's child.
   */
  cpuPids(): number[];
  close(): Promise<void>;
}

export async function openBenchDb(adminUrl: string | undefined, poolMax: number): Promise<BenchDb> {
  if (adminUrl) return openPostgres(adminUrl, poolMax);
  return openEmbedded();
}

async function openPostgres(adminUrl: string, poolMax: number): Promise<BenchDb> {
  const name = `billing_bench_${process.pid}_${Date.now().toString(36)}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  const version = (await admin.query<{ server_version: string }>("show server_version")).rows[0].server_version;
  await admin.query(`create database "${name}"`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const pool = new Pool({ connectionString: url.toString(), max: 3 });
  // An idle client's connection ended by the server (the drop below) must not crash the run.
  pool.on("error", () => undefined);
  return {
    kind: "postgres",
    url: url.toString(),
    poolMax,
    concurrentQueries: true,
    async query<T>(sql: string, params: unknown[] = []) {
      return (await pool.query(sql, params)).rows as T[];
    },
    async exec(sql: string) {
      await pool.query(sql);
    },
    async waitIdle() {},
    describe: () => `PostgreSQL ${version} at ${url.host}, database ${name} (created for this run, dropped after)`,
    cpuPids: () => (/^(127\.|localhost$|\[::1\]$)/.test(url.hostname) ? pidsNamed("postgres") : []),
    async close() {
      await pool.end();
      const d = new Client({ connectionString: adminUrl });
      await d.connect();
      await d.query(`drop database if exists "${name}" with (force)`);
      await d.end();
    },
  };
}

async function openEmbedded(): Promise<BenchDb> {
  const child: Child = startChild("embedded database", path.join(__dirname, "..", "embedded-db.js"));
  const m = await child.waitForLine(/^READY (.*)$/, 60_000);
  const { url, control } = JSON.parse(m[1]) as { url: string; control: string };
  const call = async (body: unknown) => {
    child.assertAlive();
    const r = await httpJson<{ rows?: unknown[]; error?: string }>("POST", control, body, { timeoutMs: 600_000 });
    if (r.status !== 200) throw new Error(`embedded database: ${r.body?.error ?? r.status}`);
    return r.body.rows ?? [];
  };
  return {
    kind: "embedded",
    url,
    poolMax: 1,
    concurrentQueries: false,
    query: async <T>(sql: string, params: unknown[] = []) => (await call({ sql, params })) as T[],
    exec: async (sql: string) => {
      await call({ sql, exec: true });
    },
    async waitIdle() {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const r = await httpJson<{ activeConnections: number }>("GET", control);
        if (r.body.activeConnections === 0) return;
        if (Date.now() > deadline) throw new Error("embedded database: a client still holds the connection");
        await sleep(50);
      }
    },
    describe: () => "embedded PGlite (in a child process, one connection at a time)",
    cpuPids: () => [child.pid],
    close: () => child.stop(),
  };
}

/** The pids of the processes whose command is `comm` (from /proc). */
function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
