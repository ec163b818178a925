import { Harness, registerCard, uid } from "../support/harness";
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
 * A burst of renewal webhooks (Iamport runs the first of the month's
 * schedules and calls back for all of them at once), delivered side by side
 * on the schedule callback: each renewal must end exactly as a renewal alone
 * does, and one that cannot be renewed the usual way (Iamport refuses its
 * next schedule, a stray order holds its next merchant_uid, a later attempt
 * already exists) must neither keep the others from being written nor be
 * renewed wrongly itself.
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

/** Starts daily subscriptions and lets Iamport charge their second period with the webhooks lost; each one's imp_uid. */
async function dueRenewals(n: number): Promise<{ subs: Sub[]; impUids: string[] }> {
  const subs: Sub[] = [];
  for (let i = 0; i < n; i++) subs.push(await startSub(h, { customerUid: await registerCard(h, uid("batch")), interval: "DAY" }));
  started.push(...subs);
  const byId = await runRenewalsSilently(h, subs);
  // As on the first of the month, the charges were registered long before Iamport ran them (a day ago on
  // Iamport's clock, a moment ago on the server's, which the emulator cannot move).
  await h.sql(`update payments set checked_at = checked_at - interval '1 hour' where subscription_id in (${subs.map(() => "?").join(", ")})`, subs.map((s) => s.id));
  return { subs, impUids: subs.map((s) => byId.get(s.id)!) };
}

/** Iamport's schedule callbacks for these payments, all sent at once; the server's answers. */
async function burst(impUids: string[]): Promise<{ status: number; outcome: unknown }[]> {
  const answers = await Promise.all(impUids.map((imp_uid) => h.http.post("/iamport-callback/schedule", { imp_uid, status: "paid" })));
  return answers.map((r) => ({ status: r.status, outcome: r.data?.outcome }));
}

const iamportAuth = async () => ({ headers: { Authorization: await h.iamportToken() } });

describe("a burst of renewal webhooks", () => {
  it("renews each subscription once, as a webhook alone would", async () => {
    const { subs, impUids } = await dueRenewals(6);
    expect(await burst(impUids)).toEqual(Array(6).fill({ status: 200, outcome: "PAID" }));
    for (const s of subs) await expectRenewedOnce(h, s);
    // The same burst again (Iamport retries) changes nothing.
    expect(await burst(impUids)).toEqual(Array(6).fill({ status: 200, outcome: "PAID" }));
    for (const s of subs) await expectRenewedOnce(h, s);
  });

  it("renews the others when Iamport refuses one's next schedule, and still records that one's charge", async () => {
    const { subs, impUids } = await dueRenewals(4);
    // Iamport already holds the first subscription's next merchant_uid: it refuses the renewal's schedule call.
    const taken = await h.emu.post(
      "/subscribe/payments/schedule",
      { customer_uid: subs[0].customerUid, schedules: [{ merchant_uid: renewalUid(subs[0].id, 3), schedule_at: unix(subs[0].nextPaymentAt!) + 5 * 86400, amount: 1000, name: "Taken elsewhere" }] },
      await iamportAuth(),
    );
    expect([taken.data.code, taken.data.message]).toEqual([0, null]);
    const answers = await burst(impUids);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    for (const s of subs.slice(1)) await expectRenewedOnce(h, s);
    // The money Iamport took is recorded, the period it paid for is granted, and the next charge is on record.
    expect((await paymentRows(h, subs[0].id)).map((r) => [r.period, r.attempt, r.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "PAID"],
      [3, 1, "SCHEDULED"],
    ]);
    expect(await getSub(h, subs[0].id)).toMatchObject({ status: "ACTIVE", currentPeriodStart: subs[0].currentPeriodEnd });
    // The schedule taken elsewhere is revoked, so that it does not run in a later test's clock moves.
    const revoked = await h.emu.post(
      "/subscribe/payments/unschedule",
      { customer_uid: subs[0].customerUid, merchant_uid: [renewalUid(subs[0].id, 3)] },
      await iamportAuth(),
    );
    expect(revoked.data.code).toBe(0);
  });

  it("renews the others when a stray order holds one's next merchant_uid, and records that one's charge", async () => {
    const { subs, impUids } = await dueRenewals(3);
    // A stray order already holds the second subscription's next merchant_uid: its next charge cannot be written.
    await h.sql(
      `insert into payments (merchant_uid, name, amount, cancelled_amount, currency, status, kind, created_at, updated_at)
       values (?, 'stray', 1000, 0, 'KRW', 'PENDING', 'AGAIN', now(), now())`,
      [renewalUid(subs[1].id, 3)],
    );
    const answers = await burst(impUids);
    expect([answers[0], answers[2]]).toEqual([
      { status: 200, outcome: "PAID" },
      { status: 200, outcome: "PAID" },
    ]);
    for (const s of [subs[0], subs[2]]) await expectRenewedOnce(h, s);
    // The charge Iamport made is recorded PAID, once, and the period it paid for is granted.
    expect((await paymentRows(h, subs[1].id)).map((r) => [r.period, r.attempt, r.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "PAID"],
    ]);
    expect(await getSub(h, subs[1].id)).toMatchObject({ status: "ACTIVE", currentPeriodStart: subs[1].currentPeriodEnd });
    // The stray order is left as it was.
    expect(await h.sql(`select status, subscription_id from payments where merchant_uid = ?`, [renewalUid(subs[1].id, 3)])).toEqual([{ status: "PENDING", subscription_id: null }]);
    // A schedule registered at Iamport under the stray order's merchant_uid (before its row could be written) is
    // not the subscription's to revoke when it is canceled: revoked here, so it does not run in a later test.
    const next = (await customerSchedules(h, subs[1].customerUid, "scheduled")).map((x) => x.merchant_uid);
    expect(next.filter((m) => m !== renewalUid(subs[1].id, 3))).toEqual([]);
    if (next.length > 0) {
      const revoked = await h.emu.post("/subscribe/payments/unschedule", { customer_uid: subs[1].customerUid, merchant_uid: next }, await iamportAuth());
      expect(revoked.data.code).toBe(0);
    }
  });

  it("does not renew a subscription from a charge that a later attempt already superseded", async () => {
    const { subs, impUids } = await dueRenewals(2);
    // A second attempt of the same period is already recorded for the first subscription (a retry that
    // another path created): the paid answer about the first attempt must not renew the subscription.
    await h.sql(
      `insert into payments (merchant_uid, customer_uid, name, amount, cancelled_amount, currency, status, kind, subscription_id, period, attempt, created_at, updated_at)
       values (?, ?, 'retry', 1000, 0, 'KRW', 'PENDING', 'SCHEDULE', ?, 2, 2, now(), now())`,
      [renewalUid(subs[0].id, 2, 2), subs[0].customerUid, subs[0].id],
    );
    try {
      const answers = await burst(impUids);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      expect(answers[1]).toEqual({ status: 200, outcome: "PAID" });
      // Its own charge is recorded as Iamport reports it; nothing after it is scheduled and the subscription stays put.
      expect((await paymentRows(h, subs[0].id)).map((r) => [r.period, r.attempt, r.status])).toEqual([
        [1, 1, "PAID"],
        [2, 1, "PAID"],
        [2, 2, "PENDING"],
      ]);
      expect((await getSub(h, subs[0].id)).currentPeriodStart).toBe(subs[0].currentPeriodStart);
      expect(await customerSchedules(h, subs[0].customerUid, "scheduled")).toEqual([]);
      await expectRenewedOnce(h, subs[1]);
    } finally {
      await h.sql(`delete from payments where merchant_uid = ?`, [renewalUid(subs[0].id, 2, 2)]);
    }
  });

  it("renews once when the same payment's webhook is in the burst twice", async () => {
    const { subs, impUids } = await dueRenewals(2);
    expect(await burst([impUids[0], impUids[1], impUids[0]])).toEqual(Array(3).fill({ status: 200, outcome: "PAID" }));
    for (const s of subs) await expectRenewedOnce(h, s);
  });
});
