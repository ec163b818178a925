import { Client } from "pg";
import { adminDatabaseUrl, Harness, registerCard, uid } from "../support/harness";
import { cancelSub, expectRenewedOnce, getSub, paymentRows, renewalUid, runRenewalsSilently, startSub, startSubHarness, Sub } from "./helpers";

/**
 * What a renewal needs from the database, seen from outside: the values it
 * writes arrive as they were given, a charge committed by someone else while
 * the renewal waited for its locks is seen once the locks are held.
 */
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

const started: Sub[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) await cancelSub(h, s.id);
});

async function start(name = "Plan"): Promise<Sub> {
  const sub = await startSub(h, { customerUid: await registerCard(h, uid("rdb")), interval: "DAY", name });
  started.push(sub);
  return sub;
}

/** Lets Iamport charge the subscriptions' second period with the webhooks lost; each one's imp_uid. */
async function chargedSilently(subs: Sub[]): Promise<string[]> {
  const byId = await runRenewalsSilently(h, subs);
  // As on the first of the month, the charges were registered long before Iamport ran them (a day ago on
  // Iamport's clock, a moment ago on the server's, which the emulator cannot move).
  await h.sql(`update payments set checked_at = checked_at - interval '1 hour' where subscription_id in (${subs.map(() => "?").join(", ")})`, subs.map((s) => s.id));
  return subs.map((s) => byId.get(s.id)!);
}

const deliver = (impUid: string) => h.http.post("/iamport-callback/schedule", { imp_uid: impUid, status: "paid" });

/** Quotes, backslashes, dollars, braces, SQL and non-ASCII text: what a literal written wrong would mangle. */
const AWKWARD = `it's a "quoted" \\ backslash, 한글 ✓, $1 and $$, null, {,}, '); drop table payments; --`;

it("writes the next charge with the subscription's name as given, however awkward", async () => {
  const subs = [await start(AWKWARD), await start("Plain")];
  const impUids = await chargedSilently(subs);
  const answers = await Promise.all(impUids.map(deliver));
  expect(answers.map((r) => [r.status, r.data.outcome])).toEqual([
    [200, "PAID"],
    [200, "PAID"],
  ]);
  for (const s of subs) await expectRenewedOnce(h, s);
  const named = await h.sql<{ merchant_uid: string; name: string; amount: number }>(
    `select merchant_uid, name, amount from payments where merchant_uid in (?, ?) order by merchant_uid`,
    [renewalUid(subs[0].id, 3), renewalUid(subs[1].id, 3)],
  );
  expect(named.map((r) => [r.merchant_uid, r.name, Number(r.amount)]).sort()).toEqual(
    [
      [renewalUid(subs[0].id, 3), AWKWARD, 9900],
      [renewalUid(subs[1].id, 3), "Plain", 9900],
    ].sort(),
  );
  // And Iamport was given the same name for it.
  const token = await h.iamportToken();
  const atIamport = await h.emu.get(`/subscribe/payments/schedule/${renewalUid(subs[0].id, 3)}`, { headers: { Authorization: token } });
  expect(atIamport.data.response).toMatchObject({ name: AWKWARD, amount: 9900 });
});

// Another session must hold a lock the renewal waits for: the embedded database has a single session.
(adminDatabaseUrl() ? it : it.skip)("sees a later charge committed while it waited for the subscription's lock, and does not renew", async () => {
  const sub = await start();
  const [impUid] = await chargedSilently([sub]);
  const other = new Client({ connectionString: h.config.databaseUrl });
  await other.connect();
  try {
    // Another process holds the subscription and records a second attempt of period 2 (a retry it created)...
    await other.query("begin");
    await other.query("update subscriptions set updated_at = updated_at where id = $1", [sub.id]);
    await other.query(
      `insert into payments (merchant_uid, customer_uid, name, amount, cancelled_amount, currency, status, kind, subscription_id, period, attempt, created_at, updated_at)
       values ($1, $2, 'retry', 9900, 0, 'KRW', 'PENDING', 'SCHEDULE', $3, 2, 2, now(), now())`,
      [renewalUid(sub.id, 2, 2), sub.customerUid, sub.id],
    );
    // ...while the first attempt's webhook arrives and waits for the subscription's row lock.
    const answer = deliver(impUid);
    for (const until = Date.now() + 20_000; ; ) {
      if (Date.now() > until) throw new Error("the webhook never waited for the subscription's lock");
      const waiting = await other.query<{ n: number }>(
        `select count(*)::int as n from pg_locks l join pg_stat_activity a on a.pid = l.pid where not l.granted and a.datname = current_database()`,
      );
      if (waiting.rows[0].n > 0) break;
    }
    await other.query("commit");
    expect((await answer).status).toBe(200);
    // The first attempt's charge is recorded; the subscription is not renewed past the attempt that superseded it.
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.attempt, r.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "PAID"],
      [2, 2, "PENDING"],
    ]);
    expect((await getSub(h, sub.id)).currentPeriodStart).toBe(sub.currentPeriodStart);
  } finally {
    await other.query("rollback").catch(() => undefined);
    await other.end();
    await h.sql(`delete from payments where merchant_uid = ?`, [renewalUid(sub.id, 2, 2)]);
  }
});
