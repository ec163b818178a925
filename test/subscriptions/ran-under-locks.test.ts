import { Harness, registerCard, TEST_CARDS, uid } from "../support/harness";
import {
  advancePastNextPayment,
  cancelSub,
  customerSchedules,
  getSub,
  heldCall,
  iamportSchedule,
  paymentRows,
  release,
  renewalUid,
  startSub,
  startSubHarness,
  Sub,
  SUB_FIELDS,
  webhooksSettled,
} from "./helpers";

/**
 * A pause or a retry that meets a charge Iamport already ran settles it under
 * the subscription's locks; what that settlement leaves for after its commit
 * (the next charge it claims, registered with Iamport) runs after the
 * caller's commit, with no lock held, and against the subscription as the
 * caller left it.
 */
let h: Harness;
beforeAll(async () => {
  // One retry a day after a decline.
  h = await startSubHarness({ env: { RETRY_SCHEDULE: "1d" } });
});
afterAll(async () => {
  await h?.close();
});
/** Subscriptions a test started: canceled after it, so nothing of theirs runs when the next test moves the clock. */
const started: string[] = [];
afterEach(async () => {
  await h.emu.delete("/__emulator/faults");
  for (const id of started.splice(0)) if ((await getSub(h, id)).status !== "CANCELED") await cancelSub(h, id);
});

const RETRY = `mutation R($id: ID!) { retrySubscriptionPayment(id: $id) { ${SUB_FIELDS} } }`;
const PAUSE = `mutation P($id: ID!) { pauseSubscription(id: $id) { ${SUB_FIELDS} } }`;

const fault = (route: string, mode: string, times = 1) => h.emu.post("/__emulator/faults", { route, mode, times });

/** Iamport runs the subscription's next charge, and the server does not hear of it (its webhook is dropped). */
async function runUnheard(sub: Pick<Sub, "nextPaymentAt">): Promise<void> {
  expect((await fault("*", "drop_webhook", 1)).status).toBe(201);
  const r = await advancePastNextPayment(h, sub);
  expect(r.executed.map((e: { status: string }) => e.status)).toEqual(["paid"]);
  expect(r.webhooks).toMatchObject({ delivered: 0, dropped: 1 });
}

it("a retry that meets a dunning retry Iamport ran registers the next renewal after its commit, with the subscription's rows unlocked", async () => {
  const customerUid = await registerCard(h, uid("rl"));
  const sub = await startSub(h, { customerUid, interval: "WEEK" });
  started.push(sub.id);
  await webhooksSettled(h, [renewalUid(sub.id, 1)]);
  await registerCard(h, customerUid, TEST_CARDS.insufficient, { replace: true });
  await advancePastNextPayment(h, sub);
  const pastDue = await getSub(h, sub.id);
  expect(pastDue.status).toBe("PAST_DUE");
  // A new card; the dunning retry runs at Iamport on it and pays, unheard.
  await registerCard(h, customerUid, undefined, { replace: true });
  await runUnheard(pastDue);

  // The next renewal's registration is held at Iamport.
  expect((await fault("POST /subscribe/payments/schedule", "hold", 1)).status).toBe(201);
  const retrying = h.client.request<{ retrySubscriptionPayment: Sub }>(RETRY, { id: sub.id });
  const held = await heldCall(h, /^POST \/subscribe\/payments\/schedule$/);
  // Meanwhile the subscription and its charges are not locked (nor the embedded database's one connection taken).
  const locked = await h.sql<{ id: string }>(`select id from subscriptions where id = ? for update nowait`, [sub.id]);
  expect(locked).toHaveLength(1);
  expect(await h.sql(`select id from payments where subscription_id = ? for update nowait`, [sub.id])).toHaveLength(4);
  // Still held: the look-ups above did not wait for the server to give up on Iamport.
  await release(h, held);

  const retried = (await retrying).retrySubscriptionPayment;
  expect(retried).toMatchObject({ status: "ACTIVE", currentPeriodStart: sub.currentPeriodEnd });
  expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.attempt, r.status])).toEqual([
    [1, 1, "PAID"],
    [2, 1, "FAILED"],
    [2, 2, "PAID"],
    [3, 1, "SCHEDULED"],
  ]);
  expect((await iamportSchedule(h, renewalUid(sub.id, 3)))?.schedule_status).toBe("scheduled");
});

it("a pause that meets a renewal Iamport ran registers nothing for the paused subscription", async () => {
  const customerUid = await registerCard(h, uid("pl"));
  const sub = await startSub(h, { customerUid, interval: "MONTH" });
  started.push(sub.id);
  await webhooksSettled(h, [renewalUid(sub.id, 1)]);
  await runUnheard(sub);

  const paused = (await h.client.request<{ pauseSubscription: Sub }>(PAUSE, { id: sub.id })).pauseSubscription;
  // The period the renewal paid is the one paused.
  expect(paused).toMatchObject({ status: "PAUSED", currentPeriodStart: sub.currentPeriodEnd, nextPaymentAt: null });
  // The next renewal the settlement claimed is revoked after the pause's commit, never sent to Iamport.
  expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.status])).toEqual([
    [1, "PAID"],
    [2, "PAID"],
    [3, "REVOKED"],
  ]);
  expect(await iamportSchedule(h, renewalUid(sub.id, 3))).toBeNull();
  expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
});
