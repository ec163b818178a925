import { Harness, registerCard, uid } from "../support/harness";
import { advancePastNextPayment, cancelSub, customerSchedules, getSub, paymentRows, startSub, startSubHarness, waitFor } from "./helpers";

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

it("a cancel while the next charge's registration hangs leaves nothing scheduled at Iamport", async () => {
  const customerUid = await registerCard(h, uid("race"));
  const sub = await startSub(h, { customerUid, interval: "DAY" });
  // The registration after the renewal takes effect at Iamport but its answer never comes (client timeout 2 s).
  await fault("POST /subscribe/payments/schedule", "timeout", 1);
  const advancing = advancePastNextPayment(h, sub);
  // Cancel while the renewal's registration is in flight.
  await waitFor(async () => (await paymentRows(h, sub.id)).some((r) => r.period === 3));
  const canceled = await cancelSub(h, sub.id);
  // The second period was paid: it is served, and the cancellation takes effect at its end.
  expect(canceled).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodStart: sub.currentPeriodEnd });
  await advancing;
  await waitFor(async () => (await customerSchedules(h, customerUid, "scheduled")).length === 0, 15_000);
  const rows = await paymentRows(h, sub.id);
  expect(rows.find((r) => r.period === 3)?.status).toBe("REVOKED");
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
