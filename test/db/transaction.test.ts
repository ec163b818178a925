import { Client } from "pg";
import { pgTime, transaction, usePreparedStatements, type Query, type Statement } from "../../src/db/sql";
import { adminDatabaseUrl, Harness, startHarness } from "../support/harness";

/**
 * `transaction` (src/db/sql.ts) sends its BEGIN with the first statements,
 * and `q.all` several statements in one round trip, their parameters written
 * as literals. Against the real database: the values must arrive as
 * parameters would, each statement must read its own snapshot (a statement
 * after a lock wait sees what was committed during the wait: the renewal
 * batch's check for later charges relies on it), and a failure must leave
 * the connection clean.
 */
let h: Harness;
/** Each round trip of the server's connections: the connection and the text sent. */
const sent: { conn: object; text: string }[] = [];
/** Plays a pooler in transaction mode: PostgreSQL knows the statements under other names than this side's. */
let pooled = false;
beforeAll(async () => {
  h = await startHarness();
  const client = (h.server.orm.em.getKnex() as unknown as { client: { acquireConnection(): Promise<unknown> } }).client;
  const acquire = client.acquireConnection.bind(client);
  const spied = new WeakSet<object>();
  client.acquireConnection = async () => {
    const conn = (await acquire()) as { query(c: string | { text: string }, ...rest: unknown[]): unknown };
    if (!spied.has(conn)) {
      spied.add(conn);
      const query = conn.query.bind(conn);
      // The ORM's own queries pass a callback: every argument is passed on.
      conn.query = (c, ...rest) => {
        sent.push({ conn, text: typeof c === "string" ? c : c.text });
        if (pooled && typeof c !== "string") c = { ...c, text: c.text.replace(/\bexecute (\w+)\(/g, "execute pgbouncer_$1(") };
        return query(c, ...rest);
      };
    }
    return conn;
  };
  await h.sql("create table tx_probe (id int primary key, note text)");
});
afterAll(async () => {
  await h?.close();
});

/** Prepared statements: on with a PostgreSQL server, off on the embedded database (server.ts). */
const preparing = adminDatabaseUrl() !== undefined;

interface Run<R> {
  result: R | null;
  /** The round trips it took. */
  trips: string[];
  /** Whether its connection had run the same statements before (and so prepared them). */
  again: boolean;
}

/** Connections that ran each function given to `tx`. */
const ranOn = new WeakMap<object, Set<object>>();

/** Runs `fn` in a transaction and returns what it returned and the round trips it took. */
async function tx<R>(fn: (q: Query) => Promise<R | null>): Promise<Run<R>> {
  const from = sent.length;
  const result = await transaction(h.server.orm.em, fn, { keyedPlans: true });
  const mine = sent.slice(from);
  const conns = ranOn.get(fn) ?? new Set<object>();
  ranOn.set(fn, conns);
  const again = mine.length > 0 && conns.has(mine[0].conn);
  if (mine.length > 0) conns.add(mine[0].conn);
  return { result, trips: mine.map((m) => m.text), again };
}

/** Runs `fn` until it runs on a connection that ran it before; each run, the last one first. */
async function untilAgain<R>(fn: (q: Query) => Promise<R | null>): Promise<Run<R>[]> {
  const runs: Run<R>[] = [];
  for (let i = 0; i < 30; i++) {
    runs.unshift(await tx(fn));
    if (runs[0].again) return runs;
  }
  throw new Error("no connection of the pool ran it twice");
}

/** Resolves once a transaction waits for a row lock (the waiting one is the only other client here). */
async function untilWaitingForLock(c: Client): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await c.query("select count(*)::int as n from pg_locks where not granted");
    if (r.rows[0].n > 0) return;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error("no transaction waited for the lock");
}

const AWKWARD = ["it's", 'a "quoted" \\ backslash', "한글 ✓", "", "$1 and $$", "null", "{,}", "'); drop table tx_probe; --"];
const ECHO = "select $1::text[] as texts, $2::text as text, $3::timestamptz as at, $4::int[] as ints, $5::jsonb as doc, $6::text as none";

describe("transaction", () => {
  it("sends the BEGIN with a batch of statements, in one round trip once the connection prepared them", async () => {
    const statements: Statement[] = [
      { text: "select count(*)::int as n from tx_probe where id = any($1::int[])", values: [[1, 2]] },
      { text: "savepoint probe" },
      { text: "select $1::text as word", values: ["ok"] },
    ];
    const runs = await untilAgain((q) => q.all(statements));
    for (const run of runs) expect(run.result).toEqual([[{ n: 0 }], [], [{ word: "ok" }]]);
    // Then the commit, in a round trip of its own.
    expect(runs[0].trips).toHaveLength(2);
    expect(runs[0].trips[0]).toMatch(/^begin; set local plan_cache_mode = force_generic_plan;.*; savepoint probe; /);
    expect(runs[0].trips[1]).toBe("commit");
    // The first time on a connection, one by one (which prepares them); without prepared statements, at once.
    expect(runs[runs.length - 1].trips).toHaveLength(preparing ? 5 : 2);
  });

  it("gives each value to PostgreSQL as the parameter itself would be", async () => {
    const at = new Date("2026-11-01T00:00:00.123Z");
    const values = [AWKWARD, "O'Brien \\n", at, [1, -2, null], JSON.stringify({ a: "it's", b: [1, "\\"] }), null];
    const asParameters = (await tx((q) => q(ECHO, values))).result!;
    expect(asParameters).toEqual([{ texts: AWKWARD, text: "O'Brien \\n", at: expect.anything(), ints: [1, -2, null], doc: { a: "it's", b: [1, "\\"] }, none: null }]);
    expect(pgTime(asParameters[0].at as string)).toEqual(at);
    const runs = await untilAgain((q) => q.all([{ text: ECHO, values }, { text: ECHO, values }]));
    for (const run of runs) expect(run.result).toEqual([asParameters, asParameters]);
    expect(runs[0].trips[0]).toMatch(preparing ? /; execute \w+\( ?E?'\{/ : /; select \( ?E?'\{/);
    expect(await h.sql("select count(*)::int as n from tx_probe")).toEqual([{ n: 0 }]);
  });

  // The embedded database serves one session to every connection: no other transaction can hold a lock there.
  (preparing ? it : it.skip)("reads, in a statement after one that waited for a row lock, what was committed during the wait", async () => {
    const lockThenCount = (q: Query) =>
      q.all([
        { text: "select id from tx_probe where id = any($1::int[]) for update", values: [[1]] },
        { text: "select count(*)::int as n from tx_probe where id > $1", values: [1] },
      ]);
    const other = new Client({ connectionString: h.config.databaseUrl });
    await other.connect();
    try {
      let inOneTrip = 0;
      for (let i = 0; i < 30 && inOneTrip === 0; i++) {
        await h.sql("delete from tx_probe");
        await h.sql("insert into tx_probe (id, note) values (1, 'locked')");
        await other.query("begin");
        await other.query("update tx_probe set note = 'held' where id = 1");
        const waiting = tx(lockThenCount);
        await untilWaitingForLock(other);
        await other.query("insert into tx_probe (id, note) values (2, 'committed during the wait')");
        await other.query("commit");
        const run = await waiting;
        expect(run.result).toEqual([[{ id: 1 }], [{ n: 1 }]]);
        if (run.trips.length === 2) inOneTrip++;
      }
      expect(inOneTrip).toBe(1);
    } finally {
      await other.end();
      await h.sql("delete from tx_probe");
    }
  });

  it("rolls back a batch a statement of which failed, and leaves the connection outside any transaction", async () => {
    const batch = (divisor: number) => async (q: Query) => {
      await q.all([
        { text: "insert into tx_probe (id, note) values ($1, $2)", values: [7, "never"] },
        { text: "select 1 / $1::int as boom", values: [divisor] },
      ]);
      return null; // rolled back when it succeeds: only the statements' preparation is kept
    };
    await untilAgain(batch(1));
    let together = 0;
    for (let i = 0; i < 30 && together < 2; i++) {
      const from = sent.length;
      await expect(tx(batch(0))).rejects.toThrow(/division by zero/);
      // The batch went with its BEGIN (prepared on that connection), and a rollback followed at once.
      if (/^begin; /.test(sent[from].text)) {
        together++;
        expect(sent.slice(from + 1).map((s) => s.text)).toEqual(["rollback"]);
      }
      expect(await h.sql("select count(*)::int as n from tx_probe")).toEqual([{ n: 0 }]);
    }
    expect(together).toBe(2);
    // The connections commit the next transactions' writes.
    for (let id = 8; id < 18; id++) await tx((q) => q("insert into tx_probe (id, note) values ($1, $2)", [id, "kept"]));
    expect(await h.sql("select count(*)::int as n from tx_probe where note = 'kept'")).toEqual([{ n: 10 }]);
    await h.sql("delete from tx_probe");
  });

  it("sends nothing for a transaction that ran no statement", async () => {
    const { result, trips } = await tx(async () => null);
    expect([result, trips]).toEqual([null, []]);
  });

  // Last: it turns the batching off for the rest of the server's life.
  (preparing ? it : it.skip)("inlines the parameters, from then on, when PostgreSQL does not know the statements by name (a pooler)", async () => {
    const statements: Statement[] = [
      { text: "select count(*)::int as n from tx_probe where id = any($1::int[]) and note = $2", values: [[1], "pooled"] },
      { text: "savepoint pooled" },
    ];
    const batch = (q: Query) => q.all(statements);
    await untilAgain(batch);
    pooled = true;
    try {
      const runs = await untilAgain(batch);
      const warned = () => h.logs.filter((l) => l.includes("carry their parameters inlined from now on"));
      // On the connection that had them prepared: refused (26000), rolled back, and sent again at once with
      // the parameters in the text.
      expect(runs[0].result).toEqual([[{ n: 0 }], []]);
      expect(runs[0].trips).toHaveLength(4);
      expect(runs[0].trips[0]).toMatch(/^begin; .*; execute \w+\(/);
      expect(runs[0].trips[1]).toBe("rollback");
      expect(runs[0].trips[2]).toMatch(/^begin; set local .*; select count\(\*\)::int as n from tx_probe where id = any\(\('\{"1"\}'\)::int\[\]\) and note = \('pooled'\); savepoint pooled$/);
      expect(runs[0].trips[3]).toBe("commit");
      expect(warned()).toHaveLength(1);
      // From then on, never an execute, still one round trip (and the commit); told once.
      const after = await untilAgain(batch);
      for (const run of after) {
        expect(run.result).toEqual([[{ n: 0 }], []]);
        expect(run.trips).toHaveLength(2);
        expect(run.trips[0]).not.toMatch(/\bexecute /);
      }
      expect(warned()).toHaveLength(1);
    } finally {
      pooled = false;
      usePreparedStatements(true);
    }
  });
});
