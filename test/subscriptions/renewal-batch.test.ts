import pino from "pino";
import type { Ctx } from "../../src/billing/context";
import type { IamportPayment } from "../../src/iamport/iamport.types";
import { Harness, histogramTotals, registerCard, uid } from "../support/harness";
import {
  cancelSub,
  customerSchedules,
  expectRenewedOnce,
  getSub,
  paymentRows,
  renewalUid,
  runRenewalsSilently,
  startSub,
  startSubHarness,
  Sub,
  unix,
} from "./helpers";

/**
 * Renewals whose Iamport answers arrive in the same turn of the event loop (a
 * burst of webhooks) are settled in one transaction (src/billing/renewal.ts).
 * These call the fast renewal directly, all in one turn, so the batch is
 * certain, against the real database and the emulator: each renewal of a
 * batch must end exactly as a renewal alone does, and one that cannot be
 * taken must leave the others written and itself untouched for the general path.
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

const log = pino({ level: "silent" });
const ctx = (): Ctx => ({ em: h.server.orm.em.fork(), db: h.server.orm.em, requestId: "batch-test", log });

/** Starts daily subscriptions and lets Iamport charge their second period with the webhooks lost; Iamport's answers. */
async function dueRenewals(n: number): Promise<{ subs: Sub[]; paid: IamportPayment[] }> {
  const subs: Sub[] = [];
  for (let i = 0; i < n; i++) subs.push(await startSub(h, { customerUid: await registerCard(h, uid("batch")), interval: "DAY" }));
  started.push(...subs);
  const impUids = await runRenewalsSilently(h, subs);
  // The charges were registered a moment ago on the server's clock (a day ago on Iamport's): an answer fetched
  // within a second of a row's last check is re-asked under the lock, which is not what this is about.
  await h.sql(`update payments set checked_at = checked_at - interval '1 hour' where subscription_id in (${subs.map(() => "?").join(", ")})`, subs.map((s) => s.id));
  const paid: IamportPayment[] = [];
  for (const s of subs) {
    const ip = await h.server.iamport.getPayment(impUids.get(s.id)!, { requestId: "batch-test" });
    expect(ip.status).toBe("paid");
    paid.push(ip);
  }
  return { subs, paid };
}

const batchHistogram = () => histogramTotals(h.server.metrics.renewalBatch);

describe("renewals ready at once", () => {
  it("are settled in one transaction, each as a renewal alone would be", async () => {
    const { subs, paid } = await dueRenewals(6);
    const before = await batchHistogram();
    const fast = h.server.services.webhooks.fastRenewal!;
    const at = new Date();
    const results = await Promise.all(paid.map((ip) => fast(ctx(), ip, at)));
    expect(results.map((r) => r?.status)).toEqual(Array(6).fill("PAID"));
    const after = await batchHistogram();
    expect([after.count - before.count, after.sum - before.sum]).toEqual([1, 6]);
    for (const s of subs) await expectRenewedOnce(h, s);
  });

  it("leave one Iamport refuses to schedule untouched for the general path, and write the others", async () => {
    const { subs, paid } = await dueRenewals(4);
    // Iamport already holds the first subscription's next merchant_uid: it refuses the renewal's schedule call.
    const token = await h.iamportToken();
    const taken = await h.emu.post(
      "/subscribe/payments/schedule",
      { customer_uid: subs[0].customerUid, schedules: [{ merchant_uid: renewalUid(subs[0].id, 3), schedule_at: unix(subs[0].nextPaymentAt!) + 5 * 86400, amount: 1000, name: "Taken elsewhere" }] },
      { headers: { Authorization: token } },
    );
    expect([taken.data.code, taken.data.message]).toEqual([0, null]);
    const fast = h.server.services.webhooks.fastRenewal!;
    const at = new Date();
    const results = await Promise.all(paid.map((ip) => fast(ctx(), ip, at)));
    expect(results.map((r) => r?.status ?? null)).toEqual([null, "PAID", "PAID", "PAID"]);
    // Nothing written for the refused one: its charge still SCHEDULED, no next row, the subscription unmoved.
    expect((await paymentRows(h, subs[0].id)).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "SCHEDULED"],
    ]);
    expect((await getSub(h, subs[0].id)).currentPeriodStart).toBe(subs[0].currentPeriodStart);
    for (const s of subs.slice(1)) await expectRenewedOnce(h, s);
    // The schedule taken elsewhere is revoked, so that it does not run in a later test's clock moves.
    const revoked = await h.emu.post(
      "/subscribe/payments/unschedule",
      { customer_uid: subs[0].customerUid, merchant_uid: [renewalUid(subs[0].id, 3)] },
      { headers: { Authorization: token } },
    );
    expect(revoked.data.code).toBe(0);
  });

  it("keep the others written when one renewal's write fails, with that one left untouched", async () => {
    const { subs, paid } = await dueRenewals(3);
    // A stray order already holds the second subscription's next merchant_uid: its insert breaks the unique key,
    // after its schedule call. The batch's write fails; written one by one, only that renewal fails again.
    await h.sql(
      `insert into payments (merchant_uid, name, amount, cancelled_amount, currency, status, kind, created_at, updated_at)
       values (?, 'stray', 1000, 0, 'KRW', 'PENDING', 'AGAIN', now(), now())`,
      [renewalUid(subs[1].id, 3)],
    );
    const fast = h.server.services.webhooks.fastRenewal!;
    const at = new Date();
    const results = await Promise.all(paid.map((ip) => fast(ctx(), ip, at)));
    expect(results.map((r) => r?.status ?? null)).toEqual(["PAID", null, "PAID"]);
    expect((await paymentRows(h, subs[1].id)).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "SCHEDULED"],
    ]);
    for (const s of [subs[0], subs[2]]) await expectRenewedOnce(h, s);
    // Its next charge was registered before the write failed: the general path (run by the webhook's caller,
    // not here) finds it at Iamport. Revoked here, so that it does not run in the next test's clock moves.
    const next = await customerSchedules(h, subs[1].customerUid, "scheduled");
    expect(next.map((x) => x.merchant_uid)).toEqual([renewalUid(subs[1].id, 3)]);
    const revoked = await h.emu.post(
      "/subscribe/payments/unschedule",
      { customer_uid: subs[1].customerUid, merchant_uid: [renewalUid(subs[1].id, 3)] },
      { headers: { Authorization: await h.iamportToken() } },
    );
    expect(revoked.data.code).toBe(0);
  });

  it("leave a charge whose subscription already has a later one untouched for the general path", async () => {
    const { subs, paid } = await dueRenewals(2);
    // A second attempt of the same period is already recorded for the first subscription (a retry that
    // another path created): the paid answer about the first attempt must not renew the subscription.
    await h.sql(
      `insert into payments (merchant_uid, customer_uid, name, amount, cancelled_amount, currency, status, kind, subscription_id, period, attempt, created_at, updated_at)
       values (?, ?, 'retry', 1000, 0, 'KRW', 'PENDING', 'SCHEDULE', ?, 2, 2, now(), now())`,
      [renewalUid(subs[0].id, 2, 2), subs[0].customerUid, subs[0].id],
    );
    try {
      const fast = h.server.services.webhooks.fastRenewal!;
      const at = new Date();
      const results = await Promise.all(paid.map((ip) => fast(ctx(), ip, at)));
      expect(results.map((r) => r?.status ?? null)).toEqual([null, "PAID"]);
      expect((await paymentRows(h, subs[0].id)).map((r) => [r.period, r.attempt, r.status])).toEqual([
        [1, 1, "PAID"],
        [2, 1, "SCHEDULED"],
        [2, 2, "PENDING"],
      ]);
      expect((await getSub(h, subs[0].id)).currentPeriodStart).toBe(subs[0].currentPeriodStart);
      await expectRenewedOnce(h, subs[1]);
    } finally {
      await h.sql(`delete from payments where merchant_uid = ?`, [renewalUid(subs[0].id, 2, 2)]);
    }
  });

  it("settle a payment named twice in one batch once; the second is left to the general path", async () => {
    const { subs, paid } = await dueRenewals(2);
    const fast = h.server.services.webhooks.fastRenewal!;
    const at = new Date();
    const results = await Promise.all([paid[0], paid[1], paid[0]].map((ip) => fast(ctx(), ip, at)));
    expect(results.map((r) => r?.status ?? null)).toEqual(["PAID", "PAID", null]);
    for (const s of subs) await expectRenewedOnce(h, s);
  });
});
