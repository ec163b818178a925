import { HARD_DECLINE } from "../../src/billing/domain/settlement";
import { DECLINE_REASONS } from "#iamport-emulator";
import { GOOD_CARD, Harness, REGISTER_CARD, registerCard, TEST_CARDS, uid } from "../support/harness";
import {
  advancePastNextPayment,
  ageOpenWork,
  customerSchedules,
  emulatorNow,
  getSub,
  iamportPaymentByOrder,
  iamportSchedule,
  paymentRows,
  renewalUid,
  startSub,
  startSubHarness,
  unix,
} from "./helpers";

const DAY = 86_400;

/** The schedules of one subscription that a clock move ran (others' renewals may fall in the same move). */
function ofSub(r: { executed: { merchant_uid: string }[] }, subscriptionId: string) {
  return r.executed.filter((e) => e.merchant_uid.startsWith(`sub_${subscriptionId}_`));
}

// One server with the default RETRY_SCHEDULE for most of this file.
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

describe("HARD_DECLINE", () => {
  it.each([
    [DECLINE_REASONS.limit, false],
    [DECLINE_REASONS.balance, false],
    [DECLINE_REASONS.suspended, true],
    [DECLINE_REASONS.expired, true],
    ["[F007] 분실신고카드", true],
    ["Card reported stolen", true],
    ["일시적인 오류입니다. 잠시 후 다시 시도해주세요.", false],
  ])("classifies %p as hard: %p", (reason, hard) => {
    expect(HARD_DECLINE.test(reason)).toBe(hard);
  });
});

describe("dunning with the default RETRY_SCHEDULE (1d,3d,5d)", () => {
  it("goes PAST_DUE on a failed renewal, retries after 1, 3 and 5 days, then UNPAID with nothing left scheduled", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, interval: "MONTH" });
    // The customer's card runs out of money: Iamport now charges a card with insufficient balance.
    await registerCard(h, customerUid, TEST_CARDS.insufficient, { replace: true });

    const renewal = await advancePastNextPayment(h, sub);
    expect(ofSub(renewal, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, 1), status: "failed" })]);
    let s = await getSub(h, sub.id);
    expect(s.status).toBe("PAST_DUE");
    expect(s.statusReason).toMatch(/잔액부족/);
    expect(s.statusReason).toMatch(/retry 1 of 3/);
    // The period does not move on while it is unpaid.
    expect(s.currentPeriodEnd).toBe(sub.currentPeriodEnd);
    let rows = await paymentRows(h, sub.id);
    const a1 = rows.find((r) => r.merchant_uid === renewalUid(sub.id, 2, 1))!;
    expect(a1).toMatchObject({ status: "FAILED", fail_reason: expect.stringMatching(/잔액부족/) });
    const retry1 = await iamportSchedule(h, renewalUid(sub.id, 2, 2));
    expect(retry1).toMatchObject({ schedule_status: "scheduled", amount: 9900 });
    expect(retry1!.schedule_at - unix(a1.failed_at!)).toBe(1 * DAY);
    expect(s.nextPaymentAt).toBe(new Date(retry1!.schedule_at * 1000).toISOString());

    for (const [attempt, delay] of [
      [2, 3 * DAY],
      [3, 5 * DAY],
    ] as const) {
      const r = await advancePastNextPayment(h, s);
      expect(ofSub(r, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, attempt), status: "failed" })]);
      s = await getSub(h, sub.id);
      expect(s.status).toBe("PAST_DUE");
      expect(s.statusReason).toMatch(new RegExp(`retry ${attempt} of 3`));
      rows = await paymentRows(h, sub.id);
      const failed = rows.find((x) => x.merchant_uid === renewalUid(sub.id, 2, attempt))!;
      const next = await iamportSchedule(h, renewalUid(sub.id, 2, attempt + 1));
      expect(next?.schedule_status).toBe("scheduled");
      expect(next!.schedule_at - unix(failed.failed_at!)).toBe(delay);
    }

    const last = await advancePastNextPayment(h, s);
    expect(ofSub(last, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, 4), status: "failed" })]);
    s = await getSub(h, sub.id);
    expect(s.status).toBe("UNPAID");
    expect(s.statusReason).toMatch(/retries exhausted/);
    expect(s.nextPaymentAt).toBeNull();
    rows = await paymentRows(h, sub.id);
    expect(rows.map((r) => [r.period, r.attempt, r.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "FAILED"],
      [2, 2, "FAILED"],
      [2, 3, "FAILED"],
      [2, 4, "FAILED"],
    ]);
    expect(rows.slice(1).every((r) => /잔액부족/.test(r.fail_reason ?? ""))).toBe(true);
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);

    // Months later nothing more is attempted.
    const later = await h.advance(62 * DAY);
    expect(later.executed.filter((e) => e.merchant_uid.startsWith(`sub_${sub.id}_`))).toEqual([]);
    expect((await getSub(h, sub.id)).status).toBe("UNPAID");
  });

  it("returns to ACTIVE when a retry pays, without moving the billing anchor", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, interval: "MONTH" });
    await registerCard(h, customerUid, TEST_CARDS.declined, { replace: true });
    await advancePastNextPayment(h, sub);
    const pastDue = await getSub(h, sub.id);
    expect(pastDue.status).toBe("PAST_DUE");
    expect(pastDue.statusReason).toMatch(/한도초과/);

    // The customer registers a working card before the retry.
    await registerCard(h, customerUid, GOOD_CARD, { replace: true });
    const retry = await advancePastNextPayment(h, pastDue);
    expect(ofSub(retry, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, 2), status: "paid" })]);

    const s = await getSub(h, sub.id);
    expect(s).toMatchObject({ status: "ACTIVE", statusReason: null });
    // Period 2 runs from the original boundary (not from the day the retry paid) to the next one.
    expect(s.currentPeriodStart).toBe(sub.currentPeriodEnd);
    const third = new Date(sub.currentPeriodStart!);
    third.setUTCMonth(third.getUTCMonth() + 2);
    expect(s.currentPeriodEnd).toBe(third.toISOString());
    expect(s.nextPaymentAt).toBe(third.toISOString());

    const rows = await paymentRows(h, sub.id);
    expect(rows.map((r) => [r.merchant_uid, r.status])).toEqual([
      [renewalUid(sub.id, 1, 1), "PAID"],
      [renewalUid(sub.id, 2, 1), "FAILED"],
      [renewalUid(sub.id, 2, 2), "PAID"],
      [renewalUid(sub.id, 3, 1), "SCHEDULED"],
    ]);
    const scheduled = await customerSchedules(h, customerUid, "scheduled");
    expect(scheduled.map((x) => [x.merchant_uid, x.schedule_at])).toEqual([[renewalUid(sub.id, 3, 1), unix(third)]]);

    // The failed attempt's webhook delivered again changes nothing.
    const failedImp = rows[1].imp_uid!;
    const again = await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: failedImp, times: 3 });
    expect(again.data.webhooks.delivered).toBe(3);
    expect((await getSub(h, sub.id)).status).toBe("ACTIVE");
    expect((await paymentRows(h, sub.id)).map((r) => r.status)).toEqual(["PAID", "FAILED", "PAID", "SCHEDULED"]);
  });

  it("ends retries at once on a hard decline (card 0341: first charge ok, later ones declined as a suspended card)", async () => {
    const customerUid = await registerCard(h, uid("c"), TEST_CARDS.firstOkThenDeclines);
    const sub = await startSub(h, { customerUid, interval: "WEEK" });
    expect(sub.status).toBe("ACTIVE");

    const r = await advancePastNextPayment(h, sub);
    expect(ofSub(r, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, 1), status: "failed" })]);
    const s = await getSub(h, sub.id);
    expect(s.status).toBe("UNPAID");
    expect(s.statusReason).toMatch(/retries cannot fix/);
    expect(s.statusReason).toMatch(/거래정지/);
    expect(s.nextPaymentAt).toBeNull();
    expect((await paymentRows(h, sub.id)).map((x) => [x.period, x.attempt, x.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "FAILED"],
    ]);
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 2, 2))).toBeNull();
  });

  it("rehearses soft dunning with card 3220: ACTIVE, PAST_DUE through three retries declined for 잔액부족, then UNPAID", async () => {
    const customerUid = await registerCard(h, uid("c"), TEST_CARDS.firstOkThenSoftDeclines);
    const sub = await startSub(h, { customerUid, interval: "MONTH" });
    expect(sub.status).toBe("ACTIVE");

    let s = sub;
    const seen: [string, string | null][] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const r = await advancePastNextPayment(h, s);
      expect(ofSub(r, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, attempt), status: "failed" })]);
      s = await getSub(h, sub.id);
      seen.push([s.status, s.statusReason]);
    }
    expect(seen.slice(0, 3).map(([status]) => status)).toEqual(["PAST_DUE", "PAST_DUE", "PAST_DUE"]);
    seen.slice(0, 3).forEach(([, reason], i) => {
      expect(reason).toMatch(/잔액부족/);
      expect(reason).toMatch(new RegExp(`retry ${i + 1} of 3`));
    });
    expect(s).toMatchObject({ status: "UNPAID", nextPaymentAt: null });
    expect(s.statusReason).toMatch(/retries exhausted/);
    expect((await paymentRows(h, sub.id)).map((x) => [x.period, x.attempt, x.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "FAILED"],
      [2, 2, "FAILED"],
      [2, 3, "FAILED"],
      [2, 4, "FAILED"],
    ]);
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
  });

  it("rehearses recovery with card 3238: PAST_DUE after two soft declines, ACTIVE again when the second retry pays", async () => {
    const customerUid = await registerCard(h, uid("c"), TEST_CARDS.recoversAfterTwoDeclines);
    const sub = await startSub(h, { customerUid, interval: "MONTH" });
    expect(sub.status).toBe("ACTIVE");

    let s = sub;
    for (const attempt of [1, 2]) {
      const r = await advancePastNextPayment(h, s);
      expect(ofSub(r, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, attempt), status: "failed" })]);
      s = await getSub(h, sub.id);
      expect(s.status).toBe("PAST_DUE");
      expect(s.statusReason).toMatch(/잔액부족/);
      expect(s.statusReason).toMatch(new RegExp(`retry ${attempt} of 3`));
    }
    const paid = await advancePastNextPayment(h, s);
    expect(ofSub(paid, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, 3), status: "paid" })]);
    s = await getSub(h, sub.id);
    expect(s).toMatchObject({ status: "ACTIVE", statusReason: null });
    // The anchor holds: period 2 starts where period 1 ended.
    expect(s.currentPeriodStart).toBe(sub.currentPeriodEnd);
    expect((await paymentRows(h, sub.id)).map((x) => [x.period, x.attempt, x.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "FAILED"],
      [2, 2, "FAILED"],
      [2, 3, "PAID"],
      [3, 1, "SCHEDULED"],
    ]);

    // The next renewal pays on the first attempt.
    const next = await advancePastNextPayment(h, s);
    expect(ofSub(next, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 3, 1), status: "paid" })]);
    expect((await getSub(h, sub.id)).status).toBe("ACTIVE");
  });

  it("treats an expired card as a hard decline", async () => {
    // A card that expires at the end of next month by Iamport's clock; a yearly renewal comes after that.
    const expiry = new Date((await emulatorNow(h)) * 1000 + 35 * DAY * 1000).toISOString().slice(0, 7);
    const customerUid = uid("c");
    await h.client.request(REGISTER_CARD, { input: { customerUid, cardNumber: GOOD_CARD, expiry, birth: "880101", pwd2digit: "12" } });
    const sub = await startSub(h, { customerUid, interval: "YEAR" });
    expect(sub.status).toBe("ACTIVE");
    await advancePastNextPayment(h, sub);
    const s = await getSub(h, sub.id);
    expect(s.status).toBe("UNPAID");
    expect(s.statusReason).toMatch(/유효기간/);
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
  });
});

describe("dunning when the billing key was deleted at Iamport", () => {
  async function deleteKeyAtIamport(customerUid: string): Promise<void> {
    const token = await h.iamportToken();
    const r = await h.emu.delete(`/subscribe/customers/${customerUid}`, { headers: { Authorization: token } });
    expect(r.data.code).toBe(0);
  }

  it("fails the renewal; the retry Iamport refuses to schedule is FAILED with its reason and the subscription UNPAID at once", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, interval: "MONTH" });
    await deleteKeyAtIamport(customerUid);

    await advancePastNextPayment(h, sub);
    const rows = await paymentRows(h, sub.id);
    expect(rows.map((r) => [r.period, r.attempt, r.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "FAILED"],
      [2, 2, "FAILED"],
    ]);
    expect(rows[1].fail_reason).toMatch(/등록된 고객정보가 없습니다/);
    // Iamport refuses to schedule a charge of a billing key it no longer has, and would refuse every retry
    // too: the retry fails with Iamport's reason, and dunning ends.
    expect(rows[2].fail_reason).toMatch(/^Iamport refused the schedule: 등록된 고객정보가 없습니다/);
    expect(rows[2].failed_at).not.toBeNull();
    expect(await iamportSchedule(h, renewalUid(sub.id, 2, 2))).toBeNull();
    const s = await getSub(h, sub.id);
    expect(s).toMatchObject({ status: "UNPAID", nextPaymentAt: null });
    expect(s.statusReason).toMatch(/retries cannot fix: Iamport refused the schedule/);
    // Nothing is left for reconciliation.
    await ageOpenWork(h, 600);
    expect(await h.server.reconciler.runOnce()).toMatchObject({ unregisteredSchedules: 0, errors: 0 });
    expect(await paymentRows(h, sub.id)).toEqual(rows);
  });
});

describe("dunning with RETRY_SCHEDULE=1h,2h", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startSubHarness({ env: { RETRY_SCHEDULE: "1h,2h" } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("retries after 1 hour and 2 hours, then gives up: three attempts in all", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, interval: "DAY" });
    await registerCard(h, customerUid, TEST_CARDS.declined, { replace: true });
    let s = sub;
    const gaps: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const r = await advancePastNextPayment(h, s);
      expect(ofSub(r, sub.id)).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, attempt), status: "failed" })]);
      s = await getSub(h, sub.id);
      const next = await iamportSchedule(h, renewalUid(sub.id, 2, attempt + 1));
      if (next) {
        const failed = (await paymentRows(h, sub.id)).find((x) => x.attempt === attempt && x.period === 2)!;
        gaps.push(next.schedule_at - unix(failed.failed_at!));
      }
    }
    expect(gaps).toEqual([3600, 7200]);
    expect(s.status).toBe("UNPAID");
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
  });
});
