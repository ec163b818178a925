import "reflect-metadata";
import type { MikroORM } from "@mikro-orm/postgresql";
import pino from "pino";
import { PaymentStatus } from "../../src/db/entities/enums";
import { startEmbeddedDatabase, type EmbeddedDatabase } from "../../src/db/embedded";
import { migrate, openOrm } from "../../src/db/orm";
import { findPayment, listPayments } from "../../src/db/repositories/payments";
import { insertInboxEvents } from "../../src/db/repositories/webhook-events";
import { inTransaction, query } from "../../src/db/tx";
import { createTestDatabase } from "../support/harness";

/*
 * Repositories on PostgreSQL and on the embedded database (whichever the suite
 * runs on), through a pool of ONE connection: every statement runs in the same
 * session, and a statement that left the caller's transaction for the pool
 * would wait for that one connection and fail at the acquire timeout.
 */

let orm: MikroORM;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let embedded: EmbeddedDatabase | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  let url = db?.url;
  if (!url) {
    embedded = await startEmbeddedDatabase({});
    url = embedded.url;
  }
  orm = await openOrm(url, 1, pino({ level: "silent" }), { statementMs: 10_000, lockMs: 5_000, acquireMs: 3_000 });
  await migrate(orm);
});

afterAll(async () => {
  await orm?.close(true);
  await embedded?.close();
  await db?.drop();
});

const root = () => ({ em: orm.em });

async function insertPayment(merchantUid: string, at: { created: string; paid: string | null }, customerUid = "cust_repo"): Promise<void> {
  await query(
    root(),
    `insert into payments (merchant_uid, customer_uid, name, amount, status, kind, paid_at, created_at, updated_at)
     values (?, ?, 'plan', 1000, 'PAID', 'AGAIN', ?::timestamptz, ?::timestamptz, ?::timestamptz)`,
    [merchantUid, customerUid, at.paid, at.created, at.created],
  );
}

describe("repositories", () => {
  it("return timestamps as Dates parsed by the driver, whatever the session's time zone", async () => {
    await insertPayment("repo_time_1", { created: "2026-11-21 15:46:12.577123+00", paid: "2026-11-22 00:00:00+09" });
    await query(root(), "set time zone 'Asia/Seoul'", []);
    try {
      const row = await findPayment(root(), { merchantUid: "repo_time_1" });
      expect(row!.created_at).toBeInstanceOf(Date);
      // Microseconds are beyond a Date: the milliseconds are kept.
      expect(row!.created_at.toISOString()).toBe("2026-11-21T15:46:12.577Z");
      expect(row!.paid_at!.toISOString()).toBe("2026-11-21T15:00:00.000Z");
      expect(row!.failed_at).toBeNull();
    } finally {
      await query(root(), "set time zone 'UTC'", []);
    }
  });

  it("keep working after DISCARD ALL on their connection (no statement prepared under a name)", async () => {
    await insertPayment("repo_discard_1", { created: "2026-11-21 00:00:00+00", paid: null });
    expect((await findPayment(root(), { merchantUid: "repo_discard_1" }))?.merchant_uid).toBe("repo_discard_1");
    expect(await listPayments(root(), { customerUid: "cust_repo" }, 5)).not.toHaveLength(0);
    // What a pooler in transaction mode does between two clients' transactions.
    await query(root(), "discard all", []);
    expect((await findPayment(root(), { merchantUid: "repo_discard_1" }))?.merchant_uid).toBe("repo_discard_1");
    expect(await listPayments(root(), { customerUid: "cust_repo" }, 5)).not.toHaveLength(0);
  });

  it("run inside the caller's transaction, from its own manager or from the root manager in the same call", async () => {
    await expect(
      inTransaction(orm.em.fork(), async (tx) => {
        await insertPayment("repo_tx_1", { created: "2026-11-21 00:00:00+00", paid: null });
        const [id] = await insertInboxEvents({ em: tx }, [
          { source: "iamport-webhook", impUid: "imp_repo_tx", merchantUid: null, claimedStatus: null, body: "{}", remoteIp: null, receivedAt: new Date() },
        ]);
        expect(id).toMatch(/^\d+$/);
        // Uncommitted: seen only inside the transaction.
        expect(await findPayment({ em: tx }, { merchantUid: "repo_tx_1" })).not.toBeNull();
        expect(await query(root(), "select 1 from webhook_events where id = ?", [id])).toHaveLength(1);
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await findPayment(root(), { merchantUid: "repo_tx_1" })).toBeNull();
    expect(await query(root(), "select 1 from webhook_events where imp_uid = 'imp_repo_tx'", [])).toHaveLength(0);
  });

  it("report a failed statement without the values it was given", async () => {
    const err = await query(root(), "select ?::text as v, 1 / 0 as boom", ["value-that-must-not-be-logged"]).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error & { code?: string }).code).toBe("22012");
    expect((err as Error).message).toMatch(/division by zero/);
    expect((err as Error).message).not.toContain("value-that-must-not-be-logged");
  });

  it("list newest first by keyset, with each filter", async () => {
    for (let i = 1; i <= 3; i++) await insertPayment(`repo_list_${i}`, { created: "2026-11-21 00:00:00+00", paid: null }, "cust_list");
    const all = await listPayments(root(), { customerUid: "cust_list" }, 10);
    expect(all.map((r) => r.merchant_uid)).toEqual(["repo_list_3", "repo_list_2", "repo_list_1"]);
    const next = await listPayments(root(), { customerUid: "cust_list", beforeId: all[0].id, status: PaymentStatus.PAID }, 1);
    expect(next.map((r) => r.merchant_uid)).toEqual(["repo_list_2"]);
    expect(await listPayments(root(), { customerUid: "cust_list", status: PaymentStatus.FAILED }, 10)).toEqual([]);
  });
});
