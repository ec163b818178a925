import { Harness, registerCard, uid } from "../support/harness";
import {
  advancePastNextPayment,
  cancelSub,
  customerSchedules,
  getSub,
  heldCall,
  iamportSchedule,
  paymentRows,
  renewalUid,
  startSub,
  startSubHarness,
  webhooksSettled,
} from "./helpers";

/**
 * A cancellation racing the registration of the next charge (which happens
 * after the renewal commits) must never leave a live schedule at Iamport, and
 * reconciliation revokes any schedule left open at an ended subscription.
 */
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

const fault = (route: string, mode: string, times = 1) => h.emu.post("/__emulator/faults", { route, mode, times });

it("a cancel sent while the next charge's registration is held, whose answer is then lost, leaves nothing scheduled at Iamport", async () => {
  const customerUid = await registerCard(h, uid("race"));
  const sub = await startSub(h, { customerUid, interval: "DAY" });
  await webhooksSettled(h, [renewalUid(sub.id, 1)]);
  // The registration after the renewal takes effect at Iamport; its answer is held and never released, so the
  // server's client gives up on it (5 s in the harness) and settles it by looking the schedule up.
  expect((await fault("POST /subscribe/payments/schedule", "hold", 1)).status).toBe(201);
  const advancing = advancePastNextPayment(h, sub);
  await heldCall(h, /^POST \/subscribe\/payments\/schedule$/);
  expect((await iamportSchedule(h, renewalUid(sub.id, 3)))?.schedule_status).toBe("scheduled");
  // The cancellation is sent while the registration is in flight.
  const [canceled, advanced] = await Promise.all([cancelSub(h, sub.id), advancing]);
  expect(advanced.webhooks).toMatchObject({ delivered: 1, failed: 0 });
  // The answer was lost, not released: the client hung up on it.
  expect((await h.emu.get("/__emulator/faults/held")).data.held).toEqual([]);
  // The second period was paid: it is served, and the cancellation takes effect at its end.
  expect(canceled).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodStart: sub.currentPeriodEnd, nextPaymentAt: null });
  // The charge registered meanwhile is revoked at Iamport and recorded so.
  expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.status])).toEqual([
    [1, "PAID"],
    [2, "PAID"],
    [3, "REVOKED"],
  ]);
  expect((await iamportSchedule(h, renewalUid(sub.id, 3)))?.schedule_status).toBe("revoked");
  expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
  // And nothing is charged when the third period's time comes.
  const r = await advancePastNextPayment(h, { nextPaymentAt: new Date(Date.parse((await getSub(h, sub.id)).currentPeriodEnd!) + 86400_000).toISOString() });
  expect(r.executed).toEqual([]);
});

it("reconciliation revokes a schedule left open at a subscription that ended", async () => {
  const customerUid = await registerCard(h, uid("orphan"));
  const sub = await startSub(h, { customerUid, interval: "MONTH" });
  expect(await customerSchedules(h, customerUid, "scheduled")).toHaveLength(1);
  // As if a cancellation had committed while Iamport still held the schedule (a revoke that could not be sent).
  await h.sql(`update subscriptions set status = 'CANCELED', canceled_at = now() where id = ?`, [sub.id]);
  const report = await h.server.reconciler.runOnce();
  expect(report).toMatchObject({ orphansRevoked: 1, errors: 0 });
  expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
  expect((await paymentRows(h, sub.id)).map((p) => p.status)).toEqual(["PAID", "REVOKED"]);
  // Idempotent: nothing left to do.
  expect((await h.server.reconciler.runOnce()).orphansRevoked).toBe(0);
});
