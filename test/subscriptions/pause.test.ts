import { Harness, registerCard, uid } from "../support/harness";
import {
  advanceTo,
  customerSchedules,
  emulatorNow,
  emulatorPaymentCount,
  getSub,
  paymentRows,
  renewalUid,
  startSub,
  startSubHarness,
  Sub,
  SUB_FIELDS,
  unix,
  webhooksSettled,
} from "./helpers";

/**
 * pauseSubscription / resumeSubscription: paused at once with nothing live at
 * Iamport and nothing charged; resumed with one charge now (a new anchor) and
 * one schedule; a cancellation at period end undone; resumesAt honoured by
 * reconciliation. A paused subscription is live: it keeps its name for the
 * customer, and deleting the card cancels it (or is refused).
 */
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

const DAY = 86_400;
const FIELDS = `${SUB_FIELDS} pausedAt resumesAt`;
const PAUSE = `mutation P($id: ID!, $at: DateTime) { pauseSubscription(id: $id, resumesAt: $at) { ${FIELDS} } }`;
const RESUME = `mutation R($id: ID!) { resumeSubscription(id: $id) { ${FIELDS} } }`;
const CANCEL = `mutation C($input: CancelSubscriptionInput!) { cancelSubscription(input: $input) { ${FIELDS} } }`;

type PSub = Sub & { pausedAt: string | null; resumesAt: string | null };

async function pause(id: string, at?: string): Promise<PSub> {
  return (await h.client.request<{ pauseSubscription: PSub }>(PAUSE, { id, at })).pauseSubscription;
}
async function resume(id: string): Promise<PSub> {
  return (await h.client.request<{ resumeSubscription: PSub }>(RESUME, { id })).resumeSubscription;
}
async function monthly(): Promise<Sub> {
  const sub = await startSub(h, { customerUid: await registerCard(h, uid("ps")), interval: "MONTH" });
  await webhooksSettled(h, [renewalUid(sub.id, 1)]);
  return sub;
}
/** The subscription's charges Iamport made, by merchant_uid. */
async function chargesAtIamport(subId: string): Promise<string[]> {
  const r = await h.emu.get("/__emulator/webhooks");
  const uids = (r.data.webhooks as { body: { merchant_uid?: string } }[]).map((w) => w.body.merchant_uid ?? "");
  return [...new Set(uids.filter((u) => u.includes(subId)))].sort();
}

describe("pauseSubscription and resumeSubscription", () => {
  it("pauses at once with nothing live at Iamport and nothing charged; resume charges one new period now and schedules one renewal", async () => {
    const sub = await monthly();
    const paused = await pause(sub.id);
    expect(paused).toMatchObject({ status: "PAUSED", nextPaymentAt: null, resumesAt: null });
    expect(paused.pausedAt).not.toBeNull();
    expect(await pause(sub.id)).toMatchObject({ status: "PAUSED", pausedAt: paused.pausedAt });
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.attempt, r.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "REVOKED"],
    ]);

    // Past the period it would have renewed at: nothing runs.
    const r = await h.advance(45 * DAY);
    expect(r.executed.filter((e) => e.merchant_uid.includes(sub.id))).toEqual([]);

    const before = await emulatorPaymentCount(h);
    const now = await emulatorNow(h);
    const resumed = await resume(sub.id);
    const after = await emulatorNow(h);
    expect(resumed.status).toBe("ACTIVE");
    expect(await emulatorPaymentCount(h)).toBe(before + 1);
    // A new anchor: the period starts when the resume was paid, by Iamport's clock (during the call).
    expect(unix(resumed.currentPeriodStart!)).toBeGreaterThanOrEqual(now);
    expect(unix(resumed.currentPeriodStart!)).toBeLessThanOrEqual(after);
    expect(resumed.nextPaymentAt).toBe(resumed.currentPeriodEnd);
    const scheduled = await customerSchedules(h, sub.customerUid, "scheduled");
    expect(scheduled.map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.attempt, r.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "REVOKED"],
      [2, 2, "PAID"],
      [3, 1, "SCHEDULED"],
    ]);

    // Repeated: nothing more.
    expect(await resume(sub.id)).toMatchObject({ status: "ACTIVE", currentPeriodStart: resumed.currentPeriodStart });
    expect(await emulatorPaymentCount(h)).toBe(before + 1);
    // The next renewal runs on the new anchor's boundary.
    const renewal = await advanceTo(h, unix(resumed.nextPaymentAt!) + 10);
    expect(renewal.executed.filter((e) => e.merchant_uid.includes(sub.id)).map((e) => e.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
    expect((await getSub(h, sub.id)).currentPeriodStart).toBe(resumed.currentPeriodEnd);
  });

  it("resumes by itself at resumesAt, through reconciliation", async () => {
    const sub = await monthly();
    const at = new Date(((await emulatorNow(h)) + 10 * DAY) * 1000).toISOString();
    const paused = await pause(sub.id, at);
    expect(paused).toMatchObject({ status: "PAUSED", resumesAt: at });

    await advanceTo(h, unix(at) - 60);
    expect((await h.server.reconciler.runOnce()).resumed).toBe(0);
    expect((await getSub(h, sub.id)).status).toBe("PAUSED");

    await advanceTo(h, unix(at) + 60);
    expect(await h.server.reconciler.runOnce()).toMatchObject({ resumed: 1, errors: 0 });
    const resumed = await getSub(h, sub.id);
    expect(resumed.status).toBe("ACTIVE");
    expect(await chargesAtIamport(sub.id)).toEqual([renewalUid(sub.id, 1), renewalUid(sub.id, 2, 2)]);
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
    expect((await h.server.reconciler.runOnce()).resumed).toBe(0);
  });

  it("resume undoes a cancellation at period end: the next renewal is scheduled again and runs at the period's end", async () => {
    const sub = await monthly();
    const canceling = (await h.client.request<{ cancelSubscription: PSub }>(CANCEL, { input: { id: sub.id, atPeriodEnd: true } })).cancelSubscription;
    expect(canceling).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, nextPaymentAt: null });
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);

    const undone = await resume(sub.id);
    expect(undone).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: false, statusReason: null, nextPaymentAt: sub.currentPeriodEnd });
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => [s.merchant_uid, s.schedule_at])).toEqual([
      [renewalUid(sub.id, 2, 2), unix(sub.currentPeriodEnd!)],
    ]);
    expect(await resume(sub.id)).toMatchObject({ cancelAtPeriodEnd: false });
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toHaveLength(1);

    await advanceTo(h, unix(sub.currentPeriodEnd!) + 10);
    expect(await h.server.reconciler.runOnce()).toMatchObject({ expired: 0, errors: 0 });
    const renewed = await getSub(h, sub.id);
    expect(renewed).toMatchObject({ status: "ACTIVE", currentPeriodStart: sub.currentPeriodEnd });
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
  });

  it("refuses to pause a subscription that is not ACTIVE, and cancels a PAUSED one", async () => {
    const sub = await monthly();
    await pause(sub.id);
    const canceled = (await h.client.request<{ cancelSubscription: PSub }>(CANCEL, { input: { id: sub.id } })).cancelSubscription;
    expect(canceled.status).toBe("CANCELED");
    const r = await h.gql(PAUSE, { id: sub.id });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "id" });
    const again = await h.gql(RESUME, { id: sub.id });
    expect(again.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "id" });
  });

  it("keeps its name: another subscription of the same name is CONFLICT naming it, unless allowDuplicate", async () => {
    const sub = await monthly();
    await pause(sub.id);
    // startSub's default name, the paused one's.
    const START = `mutation($input: StartSubscriptionInput!) { startSubscription(input: $input) { id status } }`;
    const input = { customerUid: sub.customerUid, name: "Plan", amount: 9900, interval: "MONTH" };
    const r = await h.gql(START, { input });
    expect(r.errors?.[0].extensions?.code).toBe("CONFLICT");
    expect(r.errors?.[0].message).toContain(sub.id);
    const dup = await h.client.request<{ startSubscription: { status: string } }>(START, { input: { ...input, allowDuplicate: true } });
    expect(dup.startSubscription.status).toBe("ACTIVE");
    expect((await getSub(h, sub.id)).status).toBe("PAUSED");
  });

  it("is named by deleteCard's CONFLICT, and canceled with the card by cancelSubscriptions", async () => {
    const sub = await monthly();
    await pause(sub.id);
    const DELETE = `mutation D($c: String!, $cancel: Boolean) { deleteCard(customerUid: $c, cancelSubscriptions: $cancel) { status } }`;
    const refused = await h.gql(DELETE, { c: sub.customerUid });
    expect(refused.errors?.[0].extensions).toMatchObject({ code: "CONFLICT", subscriptionIds: [sub.id] });
    expect((await getSub(h, sub.id)).status).toBe("PAUSED");
    const { deleteCard } = await h.client.request<{ deleteCard: { status: string } }>(DELETE, { c: sub.customerUid, cancel: true });
    expect(deleteCard.status).toBe("DELETED");
    expect(await getSub(h, sub.id)).toMatchObject({ status: "CANCELED", nextPaymentAt: null });
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
  });
});
