import { Harness, registerCard, TEST_CARDS, uid } from "../support/harness";
import {
  advancePastNextPayment,
  advanceTo,
  CANCEL,
  cancelSub,
  customerSchedules,
  emulatorNow,
  getSub,
  heldCall,
  iamportPaymentByOrder,
  iamportSchedule,
  paymentRows,
  release,
  renewalUid,
  startSub,
  startSubHarness,
  unix,
  webhooksSettled,
} from "./helpers";

let h: Harness;
beforeAll(async () => {
  // Races are staged by holding Iamport's answers: the server's client must not give up on one meanwhile.
  h = await startSubHarness({ env: { IAMPORT_TIMEOUT_MS: "30000" } });
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
  // Each ordering is staged by holding one Iamport call open until the test releases it.
  const hold = async (route: string) => expect((await h.emu.post("/__emulator/faults", { route, mode: "hold", times: 1 })).status).toBe(201);

  it("sent while the renewal's webhook waits for Iamport's answer: the charge is settled by the cancellation, its period served", async () => {
    const sub = await startSub(h, { customerUid: await registerCard(h, uid("c")), interval: "DAY" });
    await webhooksSettled(h, [renewalUid(sub.id, 1)]);
    // Iamport runs the renewal and calls back; the server's look-up of the payment is held.
    await hold("GET /payments/{imp_uid}");
    const advancing = advancePastNextPayment(h, sub);
    const held = await heldCall(h, /^GET \/payments\//);
    // The server has not heard of the charge when the cancellation arrives: it finds the schedule already
    // run, settles the charge with Iamport and serves the period it paid for.
    const canceled = await cancelSub(h, sub.id);
    expect(canceled).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodStart: sub.currentPeriodEnd, nextPaymentAt: null });
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
    ]);
    // The webhook then gets its answer and changes nothing.
    await release(h, held);
    expect((await advancing).webhooks).toMatchObject({ delivered: 1, failed: 0 });
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
    ]);
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    expect(await getSub(h, sub.id)).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodStart: sub.currentPeriodEnd, nextPaymentAt: null });
    // Nothing is charged when the next period would have started; reconciliation ends it then.
    const later = await advancePastNextPayment(h, { nextPaymentAt: sub.currentPeriodEnd }, DAY + 60);
    expect(later.executed.filter((e) => e.merchant_uid.includes(sub.id))).toEqual([]);
    await h.server.reconciler.runOnce();
    expect((await getSub(h, sub.id)).status).toBe("CANCELED");
  });

  it("sent while the next charge's registration waits for Iamport's answer: the registered charge is revoked, the paid period served", async () => {
    const sub = await startSub(h, { customerUid: await registerCard(h, uid("c")), interval: "DAY" });
    await webhooksSettled(h, [renewalUid(sub.id, 1)]);
    // The server heard of the renewal and registers the next charge; Iamport takes it, its answer is held.
    await hold("POST /subscribe/payments/schedule");
    const advancing = advancePastNextPayment(h, sub);
    const held = await heldCall(h, /^POST \/subscribe\/payments\/schedule$/);
    expect((await iamportSchedule(h, renewalUid(sub.id, 3)))?.schedule_status).toBe("scheduled");
    const canceling = cancelSub(h, sub.id);
    await release(h, held);
    const [canceled, advanced] = await Promise.all([canceling, advancing]);
    expect(advanced.webhooks).toMatchObject({ delivered: 1, failed: 0 });
    expect(canceled).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodStart: sub.currentPeriodEnd, nextPaymentAt: null });
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
      [3, "REVOKED"],
    ]);
    expect((await iamportSchedule(h, renewalUid(sub.id, 3)))?.schedule_status).toBe("revoked");
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    expect(await getSub(h, sub.id)).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodStart: sub.currentPeriodEnd, nextPaymentAt: null });
    const later = await advancePastNextPayment(h, { nextPaymentAt: sub.currentPeriodEnd }, DAY + 60);
    expect(later.executed.filter((e) => e.merchant_uid.includes(sub.id))).toEqual([]);
  });
});
