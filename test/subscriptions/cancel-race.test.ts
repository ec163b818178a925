import { periodOf } from "../../src/billing/domain/billing-dates";
import { BillingInterval } from "../../src/db/entities/enums";
import { Harness, registerCard, TEST_CARDS, uid } from "../support/harness";
import {
  advanceTo,
  cancelSub,
  customerSchedules,
  getSub,
  iamportPaymentByOrder,
  paymentRows,
  renewalUid,
  runRenewalsSilently,
  startSub,
  startSubHarness,
  waitFor,
  Sub,
  unix,
  webhooksSettled,
} from "./helpers";

/**
 * A cancellation that meets a renewal charge Iamport has made: the paid
 * period is granted and the subscription ends at its end, whichever of the
 * cancellation and the renewal's webhook the server hears first.
 */
let h: Harness;
beforeAll(async () => {
  // Twenty cancels and their renewals at once, with the emulator answering in this same busy process: an Iamport
  // call can wait behind all of them, and a timeout would be noise here (this is about the races, as in cancel.test.ts).
  h = await startSubHarness({ env: { IAMPORT_TIMEOUT_MS: "30000" } });
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.emu.delete("/__emulator/faults");
});

async function startMonthly(card?: string): Promise<Sub> {
  const sub = await startSub(h, { customerUid: await registerCard(h, uid("c"), card), interval: "MONTH" });
  // The first charge's webhook goes out in the background: it must not eat a drop_webhook fault meant for the renewal.
  await webhooksSettled(h, [renewalUid(sub.id, 1)]);
  if (sub.status === "ACTIVE") return sub;
  // Twenty starts at once on a loaded machine: a first charge's answer can outlast the server's Iamport timeout,
  // and that subscription starts INCOMPLETE until its webhook settles it. The tests start from the settled one.
  const settled = await waitFor(async () => {
    const now = await getSub(h, sub.id);
    return now.status === "ACTIVE" && now.nextPaymentAt ? now : undefined;
  });
  return settled!;
}

/** The end of the second period, the one the renewal charge pays for. */
function secondPeriodEnd(sub: Sub): string {
  return periodOf(new Date(sub.currentPeriodStart!), BillingInterval.MONTH, 1, 2, h.config.billingTimeZone).end.toISOString();
}

/** The paid second period granted: ACTIVE until its end, nothing charged or scheduled after it. */
async function expectSecondPeriodGranted(sub: Sub, answer: Sub): Promise<void> {
  expect(answer).toMatchObject({
    status: "ACTIVE",
    cancelAtPeriodEnd: true,
    currentPeriodStart: sub.currentPeriodEnd,
    currentPeriodEnd: secondPeriodEnd(sub),
    nextPaymentAt: null,
    canceledAt: null,
  });
  const rows = await paymentRows(h, sub.id);
  expect(rows.filter((r) => r.period <= 2).map((r) => [r.period, r.status])).toEqual([
    [1, "PAID"],
    [2, "PAID"],
  ]);
  expect(rows.filter((r) => r.period > 2 && r.status !== "REVOKED")).toEqual([]);
  expect((await iamportPaymentByOrder(h, renewalUid(sub.id, 2)))?.status).toBe("paid");
  expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
}

/** A redelivered webhook of the renewal changes nothing. */
async function expectRedeliveryChangesNothing(sub: Sub): Promise<void> {
  const before = await getSub(h, sub.id);
  const rowsBefore = await paymentRows(h, sub.id);
  const impUid = rowsBefore.find((r) => r.period === 2)!.imp_uid!;
  const r = await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: impUid });
  expect(r.data.webhooks).toMatchObject({ delivered: 1, failed: 0 });
  expect(await getSub(h, sub.id)).toEqual(before);
  expect(await paymentRows(h, sub.id)).toEqual(rowsBefore);
  expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
}

/** Served until the paid period's end, then CANCELED, with nothing charged. */
async function expectEndsWithSecondPeriod(subs: Sub[]): Promise<void> {
  const end = Math.max(...subs.map((s) => unix(secondPeriodEnd(s))));
  const first = Math.min(...subs.map((s) => unix(secondPeriodEnd(s))));
  await advanceTo(h, first - 60);
  expect(await h.server.reconciler.runOnce()).toMatchObject({ errors: 0 });
  for (const s of subs) expect((await getSub(h, s.id)).status).toBe("ACTIVE");
  const r = await advanceTo(h, end + 60);
  expect(r.executed.filter((e) => subs.some((s) => e.merchant_uid.includes(s.id)))).toEqual([]);
  expect(await h.server.reconciler.runOnce()).toMatchObject({ errors: 0 });
  for (const s of subs) {
    const ended = await getSub(h, s.id);
    expect(ended).toMatchObject({ status: "CANCELED", cancelAtPeriodEnd: true, currentPeriodEnd: secondPeriodEnd(s) });
    expect(ended.canceledAt).not.toBeNull();
  }
}

describe.each([
  ["now", false],
  ["at the period end", true],
])("cancelSubscription (%s) meeting a renewal Iamport has charged", (_name, atPeriodEnd) => {
  it("before the server heard of it: the charge is settled first and its period granted", async () => {
    const sub = await startMonthly();
    // Iamport charges the second period; the webhook is lost, so the server still thinks period 1 is current.
    await runRenewalsSilently(h, [sub]);
    const answer = await cancelSub(h, sub.id, atPeriodEnd);
    await expectSecondPeriodGranted(sub, answer);
    expect(await getSub(h, sub.id)).toEqual(answer);
    await expectRedeliveryChangesNothing(sub);
    await expectEndsWithSecondPeriod([sub]);
  });

  it("after the server heard of it: the same end state", async () => {
    const sub = await startMonthly();
    const r = await advanceTo(h, unix(sub.nextPaymentAt!) + 10);
    expect(r.webhooks.failed).toBe(0);
    expect((await getSub(h, sub.id)).currentPeriodEnd).toBe(secondPeriodEnd(sub));
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);

    const answer = await cancelSub(h, sub.id, atPeriodEnd);
    await expectSecondPeriodGranted(sub, answer);
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
      [3, "REVOKED"],
    ]);
    await expectRedeliveryChangesNothing(sub);
    await expectEndsWithSecondPeriod([sub]);
  });

  it("while Iamport cannot be asked about the charge: cancels at the period end, and the webhook or reconciliation grants the period", async () => {
    const byWebhook = await startMonthly();
    const byReconciliation = await startMonthly();
    await runRenewalsSilently(h, [byWebhook, byReconciliation]);
    // The schedules are found executed, but the charge itself cannot be looked up.
    await h.emu.post("/__emulator/faults", { route: "GET /payments/find/{merchant_uid}", mode: "http500", times: 2 });
    for (const sub of [byWebhook, byReconciliation]) {
      const answer = await cancelSub(h, sub.id, atPeriodEnd);
      // Not an immediate cancel with the money kept: the cancellation waits for the charge's outcome.
      expect(answer).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodEnd: sub.currentPeriodEnd, nextPaymentAt: null });
      expect(answer.statusReason).toMatch(/settled/);
    }
    // The period-end step of reconciliation does not end them while the charge is open; its due-schedule step settles it.
    await h.server.reconciler.runOnce();
    await expectSecondPeriodGranted(byReconciliation, await getSub(h, byReconciliation.id));

    const impUid = (await paymentRows(h, byWebhook.id)).find((r) => r.period === 2)!.imp_uid!;
    await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: impUid });
    await expectSecondPeriodGranted(byWebhook, await getSub(h, byWebhook.id));
    await expectRedeliveryChangesNothing(byWebhook);
    await expectEndsWithSecondPeriod([byWebhook, byReconciliation]);
  });

  it("a renewal Iamport declined: nothing was paid, so the subscription ends with no retry", async () => {
    const sub = await startMonthly();
    await registerCard(h, sub.customerUid, TEST_CARDS.insufficient, { replace: true });
    await runRenewalsSilently(h, [sub]);
    const answer = await cancelSub(h, sub.id, atPeriodEnd);
    expect(answer.status).toBe("CANCELED");
    expect(answer.canceledAt).not.toBeNull();
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.attempt, p.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "FAILED"],
    ]);
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    const impUid = (await paymentRows(h, sub.id)).find((r) => r.period === 2)!.imp_uid!;
    await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: impUid });
    expect(await getSub(h, sub.id)).toEqual(answer);
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
  });
});

it("a renewal period refunded in full is not served: cancelling then ends the subscription at once", async () => {
  const sub = await startMonthly();
  await advanceTo(h, unix(sub.nextPaymentAt!) + 10);
  const refund = await h.gql(`mutation($m: String!) { refundPayment(input: { merchantUid: $m, reason: "ends now" }) { status cancelledAmount } }`, {
    m: renewalUid(sub.id, 2),
  });
  expect(refund.data).toEqual({ refundPayment: { status: "CANCELLED", cancelledAmount: 9900 } });
  const answer = await cancelSub(h, sub.id);
  expect(answer).toMatchObject({ status: "CANCELED", cancelAtPeriodEnd: false, nextPaymentAt: null });
  expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
});

it("an atPeriodEnd cancel arriving after the period ended with nothing charged ends it at that end, not as an immediate cancel", async () => {
  const sub = await startMonthly();
  // Nothing is charged for the second period (its schedule is revoked at Iamport), and Iamport's clock passes the first period's end.
  await h.sql(`update payments set status = 'REVOKED' where merchant_uid = ?`, [renewalUid(sub.id, 2)]);
  const token = await h.iamportToken();
  await h.emu.post("/subscribe/payments/unschedule", { customer_uid: sub.customerUid }, { headers: { Authorization: token } });
  await advanceTo(h, unix(sub.currentPeriodEnd!) + 10);
  const answer = await cancelSub(h, sub.id, true);
  expect(answer).toMatchObject({ status: "CANCELED", cancelAtPeriodEnd: true, currentPeriodEnd: sub.currentPeriodEnd });
  expect(answer.statusReason).toMatch(/end of the period/);
});

it("20 cancels racing the renewals: no subscription ends before the end of a period whose renewal charge was paid", async () => {
  const subs = await Promise.all(Array.from({ length: 20 }, () => startMonthly()));
  const due = Math.max(...subs.map((s) => unix(s.nextPaymentAt!)));
  // The merchant cancels all twenty (every other one at the period end); Iamport's clock reaches the renewals
  // as soon as the first cancellation is answered, and runs them and delivers their webhooks while the
  // others are on their way.
  const cancels = subs.map((s, i) => cancelSub(h, s.id, i % 2 === 1));
  const adv = await Promise.race(cancels).then(() => advanceTo(h, due + 10));
  const answers = await Promise.all(cancels);
  expect(adv.webhooks.failed).toBe(0);

  const granted: Sub[] = [];
  for (const [i, s] of subs.entries()) {
    const now = await getSub(h, s.id);
    // The answer told the truth about what happened.
    expect(answers[i]).toMatchObject({ status: now.status, cancelAtPeriodEnd: now.cancelAtPeriodEnd, currentPeriodEnd: now.currentPeriodEnd });
    const rows = await paymentRows(h, s.id);
    const second = rows.find((r) => r.period === 2)!;
    const charged = await iamportPaymentByOrder(h, renewalUid(s.id, 2));
    if (second.status === "PAID") {
      expect(charged?.status).toBe("paid");
      await expectSecondPeriodGranted(s, now);
      granted.push(s);
    } else {
      // Revoked before it ran: nothing was charged, and the first period is over.
      expect(second.status).toBe("REVOKED");
      expect(charged).toBeNull();
      expect(now.currentPeriodEnd).toBe(s.currentPeriodEnd);
      if (now.status !== "CANCELED") expect(now).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true });
    }
    expect(rows.filter((r) => r.status === "SCHEDULED" || r.status === "PENDING")).toEqual([]);
    expect(await customerSchedules(h, s.customerUid, "scheduled")).toEqual([]);
  }
  expect(await h.server.reconciler.runOnce()).toMatchObject({ errors: 0 });
  for (const s of subs) {
    if (!granted.includes(s)) expect((await getSub(h, s.id)).status).toBe("CANCELED");
  }
  if (granted.length > 0) await expectEndsWithSecondPeriod(granted);
});
