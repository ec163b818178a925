import { Harness, registerCard, uid } from "../support/harness";
import {
  advancePastNextPayment,
  cancelSub,
  expectRenewedOnce,
  iamportSchedule,
  paymentRows,
  renewalUid,
  runRenewalsSilently,
  startSub,
  startSubHarness,
  Sub,
} from "./helpers";

let h: Harness;
beforeAll(async () => {
  // Deliveries of one payment take turns on its row lock, and the turn that renews holds it across
  // Iamport's schedule call; on a loaded machine a duplicate can wait longer than the default 5 s
  // lock timeout and be answered 503 (harmless: the first delivery is doing the work). These tests
  // are about duplicates having one effect; bounded waits are test/ops/db-timeouts.test.ts's.
  h = await startSubHarness({ env: { DATABASE_LOCK_TIMEOUT_MS: "60000", DATABASE_STATEMENT_TIMEOUT_MS: "60000" } });
});
afterAll(async () => {
  await h?.close();
});

// Each test cancels what it started, so that its renewals do not run (or eat a fault) in the next test's clock moves.
const started: Sub[] = [];
async function start(interval: "DAY" | "WEEK" | "MONTH"): Promise<Sub> {
  const sub = await startSub(h, { customerUid: await registerCard(h, uid("c")), interval });
  started.push(sub);
  return sub;
}
afterEach(async () => {
  for (const s of started.splice(0)) await cancelSub(h, s.id);
});

describe("one renewal webhook delivered many times at once", () => {
  it("acts once when Iamport delivers it 25 times concurrently", async () => {
    const sub = await start("WEEK");
    const impUids = await runRenewalsSilently(h, [sub]);
    const r = await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: impUids.get(sub.id), times: 25, concurrency: 25 });
    expect(r.status).toBe(200);
    expect(r.data.webhooks).toMatchObject({ delivered: 25, failed: 0 });
    await expectRenewedOnce(h, sub);
    const events = await h.sql<{ outcome: string; processed: boolean }>(
      `select outcome, processed_at is not null as processed from webhook_events where imp_uid = ?`,
      [impUids.get(sub.id)],
    );
    expect(events).toHaveLength(25);
    expect(events.every((e) => e.processed && e.outcome === "PAID")).toBe(true);
  });

  it("acts once when 30 posts (schedule callback and webhook, JSON and form) arrive in parallel", async () => {
    const sub = await start("MONTH");
    const impUid = (await runRenewalsSilently(h, [sub])).get(sub.id)!;
    const body = { imp_uid: impUid, merchant_uid: renewalUid(sub.id, 2), status: "paid" };
    const form = new URLSearchParams(body).toString();
    const posts = Array.from({ length: 30 }, (_, i) => {
      const path = i % 3 === 0 ? "/iamport-webhook" : "/iamport-callback/schedule";
      return i % 2 === 0
        ? h.http.post(path, body)
        : h.http.post(path, form, { headers: { "content-type": "application/x-www-form-urlencoded" } });
    });
    const answers = await Promise.all(posts);
    expect(answers.map((a) => a.status)).toEqual(Array(30).fill(200));
    await expectRenewedOnce(h, sub);
  });

  it("acts once per subscription when 10 renewals fall due together and each webhook comes 5 times at once", async () => {
    const subs: Sub[] = [];
    for (let i = 0; i < 10; i++) subs.push(await start("DAY"));
    const impUids = await runRenewalsSilently(h, subs);
    const answers = await Promise.all(
      subs.flatMap((s) =>
        Array.from({ length: 5 }, () =>
          h.http.post("/iamport-callback/schedule", { imp_uid: impUids.get(s.id), merchant_uid: renewalUid(s.id, 2), status: "paid" }),
        ),
      ),
    );
    // 50 deliveries at once on a loaded CI machine: a look-up at Iamport may time out, which is answered
    // 503 ("retry later") and retried as Iamport would. Anything else than 200 or 503 is a failure.
    const retry = answers.map((a, i) => ({ a, i })).filter(({ a }) => a.status !== 200);
    expect(retry.map(({ a }) => a.status).filter((s) => s !== 503)).toEqual([]);
    for (const { a } of retry) {
      const again = await h.http.post("/iamport-callback/schedule", JSON.parse(String(a.config.data)));
      expect(again.status).toBe(200);
    }
    for (const s of subs) await expectRenewedOnce(h, s);
  });

  it("acts once when the normal delivery and redeliveries overlap", async () => {
    const sub = await start("WEEK");
    let advanced = false;
    const adv = advancePastNextPayment(h, sub).finally(() => {
      advanced = true;
    });
    // As soon as Iamport ran the schedule (its imp_uid is known), redeliver while the first delivery is in flight.
    const redeliveries = (async () => {
      for (;;) {
        const done = advanced;
        const s = await iamportSchedule(h, renewalUid(sub.id, 2));
        if (s?.imp_uid) return h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: s.imp_uid, times: 10, concurrency: 10 });
        if (done) throw new Error("the schedule did not run");
      }
    })();
    const [adv1, redelivered] = await Promise.all([adv, redeliveries]);
    expect(adv1.webhooks.failed).toBe(0);
    expect(redelivered.data.webhooks).toMatchObject({ delivered: 10, failed: 0 });
    await expectRenewedOnce(h, sub);
  });

  it("is guarded by the database too: a second row for the same subscription, period and attempt is refused", async () => {
    const sub = await start("MONTH");
    const insert = (merchantUid: string) =>
      h.sql(
        `insert into payments (merchant_uid, customer_uid, name, amount, kind, status, subscription_id, period, attempt, created_at, updated_at)
         values (?, ?, 'dup', 9900, 'SCHEDULE', 'PENDING', ?, 2, 1, now(), now())`,
        [merchantUid, sub.customerUid, sub.id],
      );
    // Another merchant_uid for a period that already has its charge.
    await expect(insert(`other_${sub.id}_p2`)).rejects.toThrow(/payments_subscription_period_attempt_unique/);
    // The same deterministic merchant_uid is refused by its own unique key.
    await expect(insert(renewalUid(sub.id, 2))).rejects.toThrow(/duplicate key|unique/i);
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.attempt])).toEqual([
      [1, 1],
      [2, 1],
    ]);
  });
});
