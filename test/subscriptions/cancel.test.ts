import { Harness, registerCard, TEST_CARDS, uid } from "../support/harness";
import {
  advancePastNextPayment,
  advanceTo,
  CANCEL,
  cancelSub,
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

let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

const DAY = 86_400;

describe("cancelSubscription now", () => {
  it("revokes the pending schedule at Iamport and nothing is charged afterwards", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, interval: "MONTH" });
    expect((await iamportSchedule(h, renewalUid(sub.id, 2)))?.schedule_status).toBe("scheduled");

    const canceled = await cancelSub(h, sub.id);
    expect(canceled).toMatchObject({ status: "CANCELED", cancelAtPeriodEnd: false, nextPaymentAt: null });
    expect(canceled.canceledAt).not.toBeNull();
    expect((await iamportSchedule(h, renewalUid(sub.id, 2)))?.schedule_status).toBe("revoked");
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "REVOKED"],
    ]);

    const r = await h.advance(70 * DAY);
    expect(r.executed.filter((e) => e.merchant_uid.includes(sub.id))).toEqual([]);
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 2))).toBeNull();
    expect((await getSub(h, sub.id)).status).toBe("CANCELED");
  });

  it("is idempotent, and answers NOT_FOUND for an unknown subscription", async () => {
    const sub = await startSub(h, { customerUid: await registerCard(h, uid("c")), interval: "WEEK" });
    const first = await cancelSub(h, sub.id);
    const second = await cancelSub(h, sub.id);
    expect(second).toMatchObject({ status: "CANCELED", canceledAt: first.canceledAt });
    const r = await h.gql(CANCEL, { input: { id: "s_does_not_exist" } });
    expect(r.errors?.[0].extensions?.code).toBe("NOT_FOUND");
  });

  it("revokes a subscription's first payment scheduled with startAt before it runs", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const startAt = new Date(((await emulatorNow(h)) + 2 * DAY) * 1000).toISOString();
    const sub = await startSub(h, { customerUid, startAt });
    await cancelSub(h, sub.id);
    expect((await iamportSchedule(h, renewalUid(sub.id, 1)))?.schedule_status).toBe("revoked");
    await h.advance(3 * DAY);
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 1))).toBeNull();
  });

  it("cancels a PAST_DUE subscription at once, revoking its retry, even when asked for the period end", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, interval: "WEEK" });
    await registerCard(h, customerUid, TEST_CARDS.insufficient, { replace: true });
    await advancePastNextPayment(h, sub);
    expect((await getSub(h, sub.id)).status).toBe("PAST_DUE");
    expect((await iamportSchedule(h, renewalUid(sub.id, 2, 2)))?.schedule_status).toBe("scheduled");

    const canceled = await cancelSub(h, sub.id, true);
    expect(canceled).toMatchObject({ status: "CANCELED", cancelAtPeriodEnd: false });
    expect((await iamportSchedule(h, renewalUid(sub.id, 2, 2)))?.schedule_status).toBe("revoked");
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
  });
});

describe("cancelSubscription at the period end", () => {
  it("stays ACTIVE until currentPeriodEnd with nothing scheduled, then becomes CANCELED by reconciliation", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, interval: "MONTH" });
    const canceling = await cancelSub(h, sub.id, true);
    expect(canceling).toMatchObject({
      status: "ACTIVE",
      cancelAtPeriodEnd: true,
      nextPaymentAt: null,
      canceledAt: null,
      currentPeriodEnd: sub.currentPeriodEnd,
    });
    expect((await iamportSchedule(h, renewalUid(sub.id, 2)))?.schedule_status).toBe("revoked");
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);

    // Just before the end, reconciliation leaves it alone: the period is paid for.
    const end = unix(sub.currentPeriodEnd!);
    await advanceTo(h, end - 60);
    await h.server.reconciler.runOnce();
    expect((await getSub(h, sub.id)).status).toBe("ACTIVE");

    // Past the end: nothing is charged, and reconciliation ends it.
    const r = await advanceTo(h, end + 60);
    expect(r.executed.filter((e) => e.merchant_uid.includes(sub.id))).toEqual([]);
    expect((await getSub(h, sub.id)).status).toBe("ACTIVE");
    const report = await h.server.reconciler.runOnce();
    expect(report.expired).toBeGreaterThanOrEqual(1);
    const ended = await getSub(h, sub.id);
    expect(ended).toMatchObject({ status: "CANCELED", cancelAtPeriodEnd: true, nextPaymentAt: null });
    expect(ended.canceledAt).not.toBeNull();
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 2))).toBeNull();
    expect((await paymentRows(h, sub.id)).map((r) => r.status)).toEqual(["PAID", "REVOKED"]);
  });
});

describe("cancelSubscription racing a renewal", () => {
  it("never leaves a schedule at Iamport when cancels arrive while the renewals' webhooks are processed", async () => {
    const subs: Awaited<ReturnType<typeof startSub>>[] = [];
    for (let i = 0; i < 6; i++) subs.push(await startSub(h, { customerUid: await registerCard(h, uid("c")), interval: "DAY" }));
    const due = Math.max(...subs.map((s) => unix(s.nextPaymentAt!)));
    // Iamport runs all six renewals and delivers their webhooks while the merchant cancels all six.
    const advancing = advanceTo(h, due + 10);
    const cancels = subs.map(async (s, i) => {
      await new Promise((r) => setTimeout(r, i * 5));
      return cancelSub(h, s.id);
    });
    const [adv, ...canceled] = await Promise.all([advancing, ...cancels]);
    expect(adv.webhooks.failed).toBe(0);

    for (const [i, s] of subs.entries()) {
      expect(await customerSchedules(h, s.customerUid, "scheduled")).toEqual([]);
      const rows = await paymentRows(h, s.id);
      // The renewal either ran before the cancel (paid, its successor revoked) or was revoked itself.
      expect(rows.filter((r) => r.status === "SCHEDULED" || r.status === "PENDING")).toEqual([]);
      expect(rows.filter((r) => r.period === 2 && r.status === "PAID").length).toBeLessThanOrEqual(1);
      // A paid renewal keeps its period: the cancellation takes effect at its end.
      if (rows.some((r) => r.period === 2 && r.status === "PAID")) {
        expect(canceled[i]).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodStart: s.currentPeriodEnd });
      } else {
        expect(canceled[i].status).toBe("CANCELED");
      }
    }
    const later = await h.advance(3 * DAY);
    expect(later.executed.filter((e) => subs.some((s) => e.merchant_uid.includes(s.id)))).toEqual([]);
  });
});
