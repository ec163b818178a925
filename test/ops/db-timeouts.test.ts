import { MikroORM } from "@mikro-orm/postgresql";
import { Migration } from "@mikro-orm/migrations";
import { Client } from "pg";
import { ormOptions, withoutStatementTimeout } from "../../src/db/orm";
import { toAppError } from "../../src/errors";
import { adminDatabaseUrl, API_KEY, createTestDatabase, Harness, PAYMENT_FIELDS, registerCard, startHarness, uid } from "../support/harness";
import { waitFor } from "../subscriptions/helpers";

/**
 * Every wait on the database is bounded: statements and lock waits by
 * DATABASE_STATEMENT_TIMEOUT_MS / DATABASE_LOCK_TIMEOUT_MS, a wait for a
 * pooled connection by DATABASE_ACQUIRE_TIMEOUT_MS. A request cut short
 * answers the retryable DATABASE_UNAVAILABLE (503 on REST), /readyz says
 * not ready, and /healthz and /metrics keep answering.
 *
 * On the embedded database the pool is one connection and PGlite runs one
 * statement at a time in this process, so no other session can hold a lock:
 * there the connection is held by a long transaction instead, which every
 * other request waits behind until the acquire timeout.
 */

const onPostgres = adminDatabaseUrl() !== undefined;
const withPostgres = onPostgres ? describe : describe.skip;
const POOL_MAX = onPostgres ? 2 : 1;
/**
 * The statement, lock and acquire timeouts of the servers here: short, for the waits they bound, and still long
 * enough for every ordinary step (the start's first connection, a card registration) on a loaded machine.
 */
const TIMEOUT_MS = "3000";

const CHARGE = `mutation Charge($input: ChargeAgainInput!) { chargeAgain(input: $input) { ${PAYMENT_FIELDS} } }`;
const PAYMENT = `query Payment($m: String) { payment(merchantUid: $m) { merchantUid status } }`;

let h: Harness;
let paid: { merchantUid: string; impUid: string };

beforeAll(async () => {
  h = await startHarness({
    env: {
      DATABASE_STATEMENT_TIMEOUT_MS: TIMEOUT_MS,
      DATABASE_LOCK_TIMEOUT_MS: TIMEOUT_MS,
      DATABASE_ACQUIRE_TIMEOUT_MS: TIMEOUT_MS,
      DATABASE_POOL_MAX: String(POOL_MAX),
      RATE_LIMIT_PER_MINUTE: "0",
      RATE_LIMIT_PUBLIC_PER_MINUTE: "0",
    },
  });
  const customerUid = await registerCard(h, uid("dbt"));
  const { chargeAgain } = await h.client.request<{ chargeAgain: { merchantUid: string; impUid: string; status: string } }>(CHARGE, {
    input: { customerUid, amount: 5000, name: "Plan" },
  });
  expect(chargeAgain.status).toBe("PAID");
  paid = chargeAgain;
});
afterAll(async () => {
  await h?.close();
});

/** Holds `n` connections of the server's own pool in open transactions until the returned release is called. */
async function holdPool(n: number): Promise<() => Promise<void>> {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let holding = 0;
  const held = Array.from({ length: n }, () =>
    h.server.orm.em.fork().transactional(async () => {
      holding += 1;
      await gate;
    }),
  );
  await waitFor(async () => holding === n);
  return async () => {
    open();
    await Promise.all(held);
  };
}

async function readPayment() {
  return h.gql<{ payment: { merchantUid: string; status: string } | null }>(PAYMENT, { m: paid.merchantUid });
}

describe("while long transactions hold every pooled connection", () => {
  it("requests answer DATABASE_UNAVAILABLE after the acquire timeout, /readyz 503, /healthz and /metrics answer; all recover on release", async () => {
    const release = await holdPool(POOL_MAX);
    try {
      const read = await readPayment();
      expect(read.status).toBe(200);
      expect(read.errors?.[0]).toMatchObject({ extensions: { code: "DATABASE_UNAVAILABLE", retryable: true } });
      expect(read.errors?.[0].message).not.toMatch(/select|knex|pool/i);

      // A webhook is refused with 503, so Iamport delivers it again.
      const hook = await h.http.post("/iamport-webhook", { imp_uid: paid.impUid, merchant_uid: paid.merchantUid, status: "paid" });
      expect(hook.status).toBe(503);

      expect((await h.http.get("/healthz")).status).toBe(200);
      const metrics = await h.http.get("/metrics");
      expect(metrics.status).toBe(200);
      expect(metrics.data).toMatch(/billing_db_pool_connections\{state="pending"\}/);

      const ready = await h.http.get("/readyz");
      expect(ready.status).toBe(503);
      expect(ready.data.checks.database).not.toBe("ok");
    } finally {
      await release();
    }
    const ready = await h.http.get("/readyz");
    expect(ready.status).toBe(200);
    expect(ready.data.checks.database).toBe("ok");
    expect((await readPayment()).data?.payment).toEqual({ merchantUid: paid.merchantUid, status: "PAID" });
  });
});

withPostgres("on PostgreSQL", () => {
  it("a table locked by another session: reads and webhooks answer DATABASE_UNAVAILABLE / 503 after the lock timeout; /healthz and /metrics answer", async () => {
    const locker = new Client({ connectionString: h.config.databaseUrl });
    await locker.connect();
    try {
      await locker.query("begin");
      await locker.query("lock table payments, subscriptions in access exclusive mode");

      const read = await readPayment();
      expect(read.errors?.[0]).toMatchObject({ extensions: { code: "DATABASE_UNAVAILABLE", retryable: true } });
      const hook = await h.http.post("/iamport-webhook", { imp_uid: paid.impUid, merchant_uid: paid.merchantUid, status: "paid" });
      expect(hook.status).toBe(503);
      expect((await h.http.get("/healthz")).status).toBe(200);
      expect((await h.http.get("/metrics")).status).toBe(200);
    } finally {
      await locker.query("rollback");
      await locker.end();
    }
    expect((await readPayment()).data?.payment).toEqual({ merchantUid: paid.merchantUid, status: "PAID" });
    const again = await h.http.post("/iamport-webhook", { imp_uid: paid.impUid, merchant_uid: paid.merchantUid, status: "paid" });
    expect(again.status).toBe(200);
  });

  it("every pooled connection carries the statement and lock timeouts, and a statement cut short is DATABASE_UNAVAILABLE", async () => {
    const [settings] = await h.sql<{ statement_timeout: string; lock_timeout: string }>(
      "select current_setting('statement_timeout') as statement_timeout, current_setting('lock_timeout') as lock_timeout",
    );
    expect(settings).toEqual({ statement_timeout: "3s", lock_timeout: "3s" });
    const err = await h.sql("select pg_sleep(30)").then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "57014" });
    expect(toAppError(err).code).toBe("DATABASE_UNAVAILABLE");
  });

  it("a migration is not cut short by the statement timeout (it may rewrite a large table)", async () => {
    class SlowMigration extends Migration {
      override async up(): Promise<void> {
        this.addSql("select pg_sleep(3)");
      }
    }
    const db = (await createTestDatabase())!;
    const run = async (wrap: boolean) => {
      // The migrator's own statements (its table, its rows) run under the timeout too: 500 ms, not less, for a loaded machine.
      const base = ormOptions(db.url, 1, undefined, { statementMs: 500, lockMs: 500, acquireMs: 5000 });
      const migration = { name: `Migration_slow_${wrap}`, class: SlowMigration };
      const orm = await MikroORM.init({ ...base, logger: () => undefined, migrations: { ...base.migrations, migrationsList: [wrap ? withoutStatementTimeout(migration) : migration] } });
      try {
        return await orm.getMigrator().up();
      } finally {
        await orm.close(true);
      }
    };
    try {
      // Unwrapped, the 500 ms statement timeout cancels it; wrapped (as every committed migration is), it runs.
      await expect(run(false)).rejects.toThrow(/canceling statement due to statement timeout/);
      expect((await run(true)).map((m) => m.name)).toEqual(["Migration_slow_true"]);
    } finally {
      await db.drop();
    }
  });

  describe("with the rate limits kept in PostgreSQL (RATE_LIMIT_STORE=postgres)", () => {
    let shared: Harness;
    beforeAll(async () => {
      shared = await startHarness({
        env: { RATE_LIMIT_STORE: "postgres", DATABASE_LOCK_TIMEOUT_MS: TIMEOUT_MS, DATABASE_STATEMENT_TIMEOUT_MS: TIMEOUT_MS, DATABASE_ACQUIRE_TIMEOUT_MS: TIMEOUT_MS },
      });
    });
    afterAll(async () => {
      await shared?.close();
    });

    it("a rate-limit store that does not answer is 503 DATABASE_UNAVAILABLE on /graphql and on the REST routes", async () => {
      const locker = new Client({ connectionString: shared.config.databaseUrl });
      await locker.connect();
      try {
        await locker.query("begin");
        await locker.query("lock table rate_limits in access exclusive mode");
        const graphql = await shared.http.post("/graphql", { query: PAYMENT, variables: { m: "order_1" } }, { headers: { authorization: `Bearer ${API_KEY}` } });
        expect({ status: graphql.status, code: graphql.data.code }).toEqual({ status: 503, code: "DATABASE_UNAVAILABLE" });
        const rest = await shared.http.post("/billings", { customer_uid: "cust_1" });
        expect({ status: rest.status, code: rest.data.code }).toEqual({ status: 503, code: "DATABASE_UNAVAILABLE" });
      } finally {
        await locker.query("rollback");
        await locker.end();
      }
      expect((await shared.gql(PAYMENT, { m: "order_1" })).data).toEqual({ payment: null });
    });
  });
});
