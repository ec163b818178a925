import { Harness, registerCard, uid } from "../support/harness";
import {
  advancePastNextPayment,
  cancelSub,
  customerSchedules,
  getSub,
  paymentRows,
  renewalUid,
  startSub,
  startSubHarness,
  Sub,
  waitFor,
  webhooksSettled,
} from "./helpers";

let h: Harness;
beforeAll(async () => {
  // Reconciliation on its own, through the pg-boss queue on the server's database, every second.
  h = await startSubHarness({ env: { RECONCILE_INTERVAL_SECONDS: "1" } });
});
afterAll(async () => {
  await h?.close();
});

// Each test cancels what it started, so its renewals do not run (or eat a fault) in the next test's clock moves.
const started: Sub[] = [];
async function start(): Promise<Sub> {
  const sub = await startSub(h, { customerUid: await registerCard(h, uid("c")), interval: "WEEK" });
  started.push(sub);
  await webhooksSettled(h, [renewalUid(sub.id, 1)]);
  return sub;
}
afterEach(async () => {
  for (const s of started.splice(0)) await cancelSub(h, s.id);
});

/** Lets Iamport charge the renewal while its webhook is lost. */
async function renewSilently(sub: Sub): Promise<void> {
  await h.emu.post("/__emulator/faults", { mode: "drop_webhook", times: 1 });
  const r = await advancePastNextPayment(h, sub);
  expect(r.executed.map((e) => e.merchant_uid)).toEqual([renewalUid(sub.id, 2)]);
  expect(r.webhooks).toMatchObject({ delivered: 0, dropped: 1 });
}

describe("reconciliation through pg-boss", () => {
  it("recovers a lost renewal webhook by itself, without anyone asking", async () => {
    const sub = await start();
    await renewSilently(sub);

    await waitFor(async () => (await paymentRows(h, sub.id)).some((p) => p.period === 3 && p.status === "SCHEDULED"), 20_000, 200);
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
      [3, "SCHEDULED"],
    ]);
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
    expect((await getSub(h, sub.id)).currentPeriodStart).toBe(sub.currentPeriodEnd);

    const jobs = await h.sql<{ state: string; n: string }>(`select state, count(*) as n from pgboss.job where name = 'reconcile' group by state`);
    expect(jobs.find((j) => j.state === "completed")).toBeDefined();
  });

  it("keeps running after a run that was interrupted (a job left active by a dead process does not block the queue)", async () => {
    // What a process killed in the middle of a run leaves behind: the job it had taken, still active.
    await h.sql(
      `insert into pgboss.job (name, data, state, started_on, singleton_key, policy)
       select name, '{}'::jsonb, 'active', now(), 'reconcile', policy from pgboss.queue where name = 'reconcile'`,
    );
    const sub = await start();
    await renewSilently(sub);
    await waitFor(async () => (await paymentRows(h, sub.id)).some((p) => p.period === 3 && p.status === "SCHEDULED"), 20_000, 200);
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
  });

  it("gives a caller a run that starts after its call, even while another run is in progress", async () => {
    const sub = await start();
    // A run starts now (it cannot see the renewal below yet)...
    const early = h.server.reconciler.runOnce();
    await renewSilently(sub);
    // ...and a run asked for after the renewal ran at Iamport must find it.
    const [, late] = await Promise.all([early, h.server.reconciler.runOnce()]);
    expect(late.errors).toBe(0);
    expect((await paymentRows(h, sub.id)).find((p) => p.period === 2)?.status).toBe("PAID");
  });

  it("logs a job whose outcome the database refuses, without an unhandled rejection, and goes on working the queue", async () => {
    // An unhandled rejection here fails this test: jest-circus's own handler reports it against the running test
    // (with boss.work(), pg-boss's unawaited complete() rejected during this test).
    const logsBefore = h.logs.length;
    // As during a connection loss at that moment: recording a reconcile job as completed fails.
    await h.sql(`create function refuse_reconcile_outcome() returns trigger language plpgsql as $$ begin raise exception 'refused by the test'; end $$`);
    await h.sql(
      `create trigger refuse_reconcile_outcome before update on pgboss.job for each row
       when (new.name = 'reconcile' and new.state = 'completed') execute function refuse_reconcile_outcome()`,
    );
    try {
      // A job is taken and run, and its completion refused: logged, and the job stays active.
      await waitFor(
        async () => h.logs.slice(logsBefore).some((l) => l.includes("reconciliation queue: a database call failed") && l.includes("refused by the test")),
        20_000,
        100,
      );
    } finally {
      await h.sql(`drop trigger refuse_reconcile_outcome on pgboss.job`);
      await h.sql(`drop function refuse_reconcile_outcome()`);
    }
    // The loop survived: a job taken after the refusal is run and recorded.
    const after = (await h.sql<{ now: Date }>(`select now() as now`))[0].now;
    await waitFor(
      async () => (await h.sql(`select 1 from pgboss.job where name = 'reconcile' and state = 'completed' and started_on > ?`, [after])).length > 0,
      20_000,
      100,
    );
  });
});
