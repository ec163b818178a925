import { LATER_TEXT, LOCK_TEXT, WRITE_TEXT } from "../../src/billing/renewal";
import { KEYED_PLANS } from "../../src/db/sql";
import { Harness, startHarness } from "../support/harness";

/**
 * The renewal batch's statements run on generic plans (KEYED_PLANS), made
 * once per connection, possibly while the tables are still empty. They must
 * reach every row by its key then too: a plan that scans a whole table or
 * index would be kept as the table grows and cost every renewal more.
 */
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

interface RawConnection {
  query(text: string): Promise<{ rows: Record<string, string>[] } | { rows: Record<string, string>[] }[]>;
}
interface KnexClient {
  acquireConnection(): Promise<RawConnection>;
  releaseConnection(conn: RawConnection): Promise<unknown>;
}

const TABLES = /\b(?:Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)\b.* on (payments|subscriptions|webhook_events)\b/;

/** The scans of our tables in a plan, each with the condition that bounds it (null when nothing does). */
function scans(plan: string[]): { line: string; cond: string | null }[] {
  const out: { line: string; cond: string | null }[] = [];
  plan.forEach((line, i) => {
    if (!TABLES.test(line)) return;
    const indent = line.search(/\S/);
    let cond: string | null = null;
    for (let j = i + 1; j < plan.length && plan[j].search(/\S/) > indent && !plan[j].trim().startsWith("->"); j++) {
      if (/^\s*(Index Cond|Recheck Cond):/.test(plan[j])) cond = plan[j].trim();
    }
    out.push({ line: line.trim(), cond });
  });
  return out;
}

describe("the renewal batch's statements", () => {
  it("look every row up by its key, on empty tables and as generic plans", async () => {
    const client = (h.server.orm.em.getKnex() as unknown as { client: KnexClient }).client;
    const conn = await client.acquireConnection();
    const rowsOf = (r: Awaited<ReturnType<RawConnection["query"]>>) => (Array.isArray(r) ? r[r.length - 1].rows : r.rows);
    try {
      await conn.query(`begin; ${KEYED_PLANS}`);
      const plan = async (name: string, text: string, args: string): Promise<string[]> => {
        await conn.query(`prepare ${name} as ${text}`);
        return rowsOf(await conn.query(`explain execute ${name}(${args})`)).map((r) => r["QUERY PLAN"]);
      };
      const plans = {
        lock: await plan("rp_lock", LOCK_TEXT, `array['a', 'b']`),
        later: await plan("rp_later", LATER_TEXT, `array['a', 'b']`),
        write: await plan("rp_write", WRITE_TEXT, Array(28).fill("null").join(", ")),
      };
      const found = Object.fromEntries(Object.entries(plans).map(([k, p]) => [k, scans(p)]));
      // Every table the statements touch is scanned, and every scan is bounded by a key condition.
      expect(found.lock.map((s) => s.line.match(TABLES)![1])).toEqual(expect.arrayContaining(["payments", "subscriptions"]));
      expect(found.later.map((s) => s.line.match(TABLES)![1])).toEqual(["payments", "payments"]);
      expect(found.write.map((s) => s.line.match(TABLES)![1])).toEqual(expect.arrayContaining(["payments", "subscriptions", "webhook_events"]));
      for (const [name, list] of Object.entries(found)) {
        expect({ name, unbounded: list.filter((s) => s.cond === null || /Seq Scan/.test(s.line)) }).toEqual({ name, unbounded: [] });
      }
    } finally {
      await conn.query("rollback").catch(() => undefined);
      for (const name of ["rp_lock", "rp_later", "rp_write"]) await conn.query(`deallocate ${name}`).catch(() => undefined);
      await client.releaseConnection(conn);
    }
  });
});
