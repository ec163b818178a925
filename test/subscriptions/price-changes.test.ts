import { mintCustomerToken } from "../../src/security/customer-token";
import { Harness, registerCard, uid } from "../support/harness";
import {
  advancePastNextPayment,
  advanceTo,
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

const SECRET = "price-test-secret-0123456789abcdefghij";
const DAY = 86_400;
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness({ env: { CUSTOMER_TOKEN_SECRET: SECRET } });
});
afterAll(async () => {
  await h?.close();
});

interface Change {
  id: string;
  subscriptionId: string;
  oldAmount: number;
  newAmount: number;
  effectiveAt: string;
  status: string;
  requestedAt: string;
  respondedAt: string | null;
}
const CHANGE_FIELDS = `id subscriptionId oldAmount newAmount effectiveAt status requestedAt respondedAt`;
const REQUEST = `mutation($input: RequestPriceChangeInput!) { requestPriceChange(input: $input) { ${CHANGE_FIELDS} } }`;
const RESPOND = `mutation($id: ID!, $accept: Boolean!) { respondToPriceChange(id: $id, accept: $accept) { ${CHANGE_FIELDS} } }`;
const WITHDRAW = `mutation($id: ID!) { withdrawPriceChange(id: $id) { ${CHANGE_FIELDS} } }`;

async function request(input: Record<string, unknown>): Promise<Change> {
  return (await h.client.request<{ requestPriceChange: Change }>(REQUEST, { input })).requestPriceChange;
}
const tokenFor = (customerUid: string) => ({ authorization: `Bearer ${mintCustomerToken(SECRET, customerUid, 600)}` });
const codes = (r: { errors?: { extensions?: { code?: string; field?: string } }[] }) => (r.errors ?? []).map((e) => [e.extensions?.code, e.extensions?.field]);
async function events(subscriptionId: string, type: string): Promise<{ data: Record<string, unknown> }[]> {
  const r = await h.client.request<{ events: { nodes: { data: Record<string, unknown> }[] } }>(`query($s: ID, $t: String) { events(subscriptionId: $s, type: $t) { nodes { data } } }`, {
    s: subscriptionId,
    t: type,
  });
  return r.events.nodes;
}

describe("a price increase", () => {
  it("accepted by the customer is charged from its renewal on, the schedule at Iamport replaced once", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, amount: 100_000, interval: "YEAR" });
    const change = await request({ subscriptionId: sub.id, newAmount: 120_000 });
    // The first renewal at least 30 days away: next year's, already registered at the old amount.
    expect(change).toMatchObject({ subscriptionId: sub.id, oldAmount: 100_000, newAmount: 120_000, status: "PENDING", effectiveAt: sub.nextPaymentAt, respondedAt: null });
    const pending = await h.client.request<{ subscription: { amount: number; pendingPriceChange: { id: string } } }>(
      `query($id: ID!) { subscription(id: $id) { amount pendingPriceChange { id } } }`,
      { id: sub.id },
    );
    expect(pending.subscription).toEqual({ amount: 100_000, pendingPriceChange: { id: change.id } });
    // One change in flight per subscription.
    expect(codes(await h.gql(REQUEST, { input: { subscriptionId: sub.id, newAmount: 130_000 } }))).toEqual([["CONFLICT", undefined]]);

    // Consent counts only within the 30 days before the change.
    const early = await h.gql(RESPOND, { id: change.id, accept: true }, tokenFor(customerUid));
    expect(codes(early)).toEqual([["BAD_USER_INPUT", "id"]]);
    expect(early.errors![0].message).toMatch(/within the 30 days before it takes effect/);

    const effective = unix(change.effectiveAt);
    await advanceTo(h, effective - 30 * DAY + 60);
    await h.server.reconciler.runOnce();
    await h.server.reconciler.runOnce();
    const notices = await events(sub.id, "subscription.price_change_requested");
    expect(notices).toHaveLength(1);
    expect(notices[0].data).toMatchObject({ oldAmount: 100_000, newAmount: 120_000, chargeAt: change.effectiveAt, consent: { required: true, givenAt: null } });

    // Another customer's token cannot answer for this one.
    const stranger = await registerCard(h, uid("c"));
    expect(codes(await h.gql(RESPOND, { id: change.id, accept: true }, tokenFor(stranger)))).toEqual([["FORBIDDEN", undefined]]);
    const accepted = await h.gql<{ respondToPriceChange: Change }>(RESPOND, { id: change.id, accept: true }, tokenFor(customerUid));
    expect(accepted.errors).toBeUndefined();
    expect(accepted.data!.respondToPriceChange).toMatchObject({ status: "ACCEPTED", respondedAt: expect.any(String) });

    // The renewal registered at the old amount was replaced at Iamport: same order, new amount, same time.
    const replaced = await iamportSchedule(h, renewalUid(sub.id, 2));
    expect(replaced).toMatchObject({ schedule_status: "scheduled", amount: 120_000, schedule_at: effective });
    expect(await customerSchedules(h, customerUid, "scheduled")).toHaveLength(1);
    // Once: the same answer again, and reconciliation, leave Iamport's schedule as it is. Iamport's history of the
    // customer's schedules holds the one registration revoked at the old amount and the one that replaced it.
    const repeated = await h.gql<{ respondToPriceChange: Change }>(RESPOND, { id: change.id, accept: true }, tokenFor(customerUid));
    expect(repeated.data?.respondToPriceChange).toEqual(accepted.data!.respondToPriceChange);
    await h.server.reconciler.runOnce();
    expect(await iamportSchedule(h, renewalUid(sub.id, 2))).toEqual(replaced);
    const history = (await customerSchedules(h, customerUid)).map((s) => [s.merchant_uid, s.schedule_status, s.amount]);
    expect(history.sort()).toEqual([
      [renewalUid(sub.id, 2), "revoked", 100_000],
      [renewalUid(sub.id, 2), "scheduled", 120_000],
    ]);
    const before = await h.client.request<{ subscription: { amount: number; nextPaymentAt: string; pendingPriceChange: { status: string } } }>(
      `query($id: ID!) { subscription(id: $id) { amount nextPaymentAt pendingPriceChange { status } } }`,
      { id: sub.id },
    );
    // The last period at the old price: the amount in force stays until the renewal at the new one is made.
    expect(before.subscription).toEqual({ amount: 100_000, nextPaymentAt: change.effectiveAt, pendingPriceChange: { status: "ACCEPTED" } });

    const run = await advancePastNextPayment(h, sub);
    expect(run.executed.filter((e) => e.merchant_uid === renewalUid(sub.id, 2))).toHaveLength(1);
    await h.server.reconciler.runOnce();
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 2))).toMatchObject({ status: "paid", amount: 120_000 });
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.status, p.amount])).toEqual([
      [1, "PAID", 100_000],
      [2, "PAID", 120_000],
      [3, "SCHEDULED", 120_000],
    ]);
    expect(await iamportSchedule(h, renewalUid(sub.id, 3))).toMatchObject({ schedule_status: "scheduled", amount: 120_000 });
    // In force now: the subscription's amount is the new one, and nothing is in flight.
    const now = await h.client.request<{ subscription: { amount: number; pendingPriceChange: null } }>(
      `query($id: ID!) { subscription(id: $id) { amount pendingPriceChange { id } } }`,
      { id: sub.id },
    );
    expect(now.subscription).toEqual({ amount: 120_000, pendingPriceChange: null });
  });

  it("left unanswered ends the subscription with the last period at the old price; nothing is charged at the new one", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, amount: 10_000, interval: "MONTH" });
    const change = await request({ subscriptionId: sub.id, newAmount: 15_000 });
    expect(change.status).toBe("PENDING");
    const effective = unix(change.effectiveAt);
    // Renewals before the change are charged at the old price; answers close a day before it.
    await advanceTo(h, effective - DAY + 10);
    await h.server.reconciler.runOnce();
    const after = await h.client.request<{ subscription: { status: string; cancelAtPeriodEnd: boolean; currentPeriodEnd: string; pendingPriceChange: null } }>(
      `query($id: ID!) { subscription(id: $id) { status cancelAtPeriodEnd currentPeriodEnd pendingPriceChange { id } } }`,
      { id: sub.id },
    );
    expect(after.subscription).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodEnd: change.effectiveAt, pendingPriceChange: null });
    const [row] = await h.sql<{ status: string }>(`select status from price_changes where id = ?`, [change.id]);
    expect(row.status).toBe("EXPIRED");
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);

    await advanceTo(h, effective + 60);
    await h.server.reconciler.runOnce();
    const ended = await getSub(h, sub.id);
    expect(ended.status).toBe("CANCELED");
    expect(ended.statusReason).toMatch(/did not accept in time the price change from 10000 to 15000/);
    const rows = await paymentRows(h, sub.id);
    expect(rows.filter((p) => p.status === "PAID").every((p) => p.amount === 10_000)).toBe(true);
    expect(rows.some((p) => p.amount === 15_000)).toBe(false);
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
    // Too late to answer now.
    expect(codes(await h.gql(RESPOND, { id: change.id, accept: true }))).toEqual([["BAD_USER_INPUT", "id"]]);
  });

  it("declined long before its renewal lets the renewals before it run at the old price, then ends the subscription", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, amount: 30_000, interval: "MONTH" });
    // Starting with the renewal after next.
    const change = await request({ subscriptionId: sub.id, newAmount: 33_000, effectiveAt: new Date(((await emulatorNow(h)) + 32 * DAY) * 1000).toISOString() });
    expect(unix(change.effectiveAt)).toBeGreaterThan(unix(sub.nextPaymentAt!));
    const declined = await h.gql<{ respondToPriceChange: Change }>(RESPOND, { id: change.id, accept: false }, tokenFor(customerUid));
    expect(declined.data?.respondToPriceChange.status).toBe("DECLINED");
    // Nothing ends yet: the next renewal is still at the old price.
    expect(await getSub(h, sub.id)).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: false });

    await advancePastNextPayment(h, sub);
    await h.server.reconciler.runOnce();
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 2))).toMatchObject({ status: "paid", amount: 30_000 });
    const last = await getSub(h, sub.id);
    // The claim of the change's renewal ended it instead: nothing scheduled after the last old-price period.
    expect(last).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, nextPaymentAt: null, currentPeriodEnd: change.effectiveAt });
    expect(await iamportSchedule(h, renewalUid(sub.id, 3))).toBeNull();

    await advanceTo(h, unix(change.effectiveAt) + 60);
    await h.server.reconciler.runOnce();
    const ended = await getSub(h, sub.id);
    expect(ended.status).toBe("CANCELED");
    expect(ended.statusReason).toMatch(/declined the price change from 30000 to 33000/);
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.status, p.amount])).toEqual([
      [1, "PAID", 30_000],
      [2, "PAID", 30_000],
    ]);
  });

  it("refuses an effectiveAt earlier than 30 days away", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, amount: 10_000, interval: "WEEK" });
    const r = await h.gql(REQUEST, { input: { subscriptionId: sub.id, newAmount: 11_000, effectiveAt: sub.nextPaymentAt } });
    expect(codes(r)).toEqual([["BAD_USER_INPUT", "effectiveAt"]]);
    expect(r.errors![0].message).toMatch(/too early for an increase/);
  });
});

describe("a price decrease", () => {
  it("is accepted at once and replaces the next renewal at Iamport when it starts there", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, amount: 20_000, interval: "MONTH" });
    const change = await request({ subscriptionId: sub.id, newAmount: 15_000, effectiveAt: sub.nextPaymentAt });
    expect(change).toMatchObject({ status: "ACCEPTED", effectiveAt: sub.nextPaymentAt });
    expect(await iamportSchedule(h, renewalUid(sub.id, 2))).toMatchObject({ schedule_status: "scheduled", amount: 15_000, schedule_at: unix(sub.nextPaymentAt!) });
    await advancePastNextPayment(h, sub);
    await h.server.reconciler.runOnce();
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 2))).toMatchObject({ status: "paid", amount: 15_000 });
    expect((await getSub(h, sub.id)).status).toBe("ACTIVE");
  });

  it("starting at a later renewal leaves the renewals before it at the old amount", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, amount: 20_000, interval: "MONTH" });
    const change = await request({ subscriptionId: sub.id, newAmount: 12_000, effectiveAt: new Date(unix(sub.nextPaymentAt!) * 1000 + 1000).toISOString() });
    expect(change.status).toBe("ACCEPTED");
    expect(unix(change.effectiveAt)).toBeGreaterThan(unix(sub.nextPaymentAt!));
    expect(await iamportSchedule(h, renewalUid(sub.id, 2))).toMatchObject({ amount: 20_000 });
    await advancePastNextPayment(h, sub);
    await h.server.reconciler.runOnce();
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 2))).toMatchObject({ status: "paid", amount: 20_000 });
    // The renewal the change starts at was claimed at the new amount.
    expect(await iamportSchedule(h, renewalUid(sub.id, 3))).toMatchObject({ schedule_status: "scheduled", amount: 12_000, schedule_at: unix(change.effectiveAt) });
    const now = await getSub(h, sub.id);
    expect(now).toMatchObject({ status: "ACTIVE" });
  });
});

describe("a price change withdrawn by the merchant", () => {
  it("is CANCELED before any answer: no notice, no answer taken, its renewal charged at the old price; an answered change stands", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, amount: 40_000, interval: "YEAR" });
    const change = await request({ subscriptionId: sub.id, newAmount: 44_000 });
    expect(change.status).toBe("PENDING");
    // Only the merchant withdraws what it asked for.
    expect(codes(await h.gql(WITHDRAW, { id: change.id }, tokenFor(customerUid)))).toEqual([["FORBIDDEN", undefined]]);
    const withdrawn = (await h.client.request<{ withdrawPriceChange: Change }>(WITHDRAW, { id: change.id })).withdrawPriceChange;
    expect(withdrawn).toMatchObject({ id: change.id, status: "CANCELED", respondedAt: expect.any(String) });
    expect((await h.client.request<{ withdrawPriceChange: Change }>(WITHDRAW, { id: change.id })).withdrawPriceChange).toEqual(withdrawn);
    // Nothing in flight: the customer's answer is refused, and Iamport's renewal is untouched.
    const late = await h.gql(RESPOND, { id: change.id, accept: true }, tokenFor(customerUid));
    expect(codes(late)).toEqual([["BAD_USER_INPUT", "id"]]);
    expect(late.errors![0].message).toMatch(/already CANCELED/);
    const shown = await h.client.request<{ subscription: { pendingPriceChange: null } }>(`query($id: ID!) { subscription(id: $id) { pendingPriceChange { id } } }`, { id: sub.id });
    expect(shown.subscription.pendingPriceChange).toBeNull();
    expect(await iamportSchedule(h, renewalUid(sub.id, 2))).toMatchObject({ schedule_status: "scheduled", amount: 40_000 });

    // Its notice's time and its renewal pass: no notice, the old price charged, the subscription renewing on.
    await advanceTo(h, unix(change.effectiveAt) - 30 * DAY + 60);
    await h.server.reconciler.runOnce();
    expect(await events(sub.id, "subscription.price_change_requested")).toEqual([]);
    await advancePastNextPayment(h, sub);
    await h.server.reconciler.runOnce();
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 2))).toMatchObject({ status: "paid", amount: 40_000 });
    expect(await getSub(h, sub.id)).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: false, statusReason: null });
    expect(await iamportSchedule(h, renewalUid(sub.id, 3))).toMatchObject({ schedule_status: "scheduled", amount: 40_000 });

    // A decrease is accepted at once: answered, it cannot be withdrawn.
    const decrease = await request({ subscriptionId: sub.id, newAmount: 30_000 });
    expect(decrease.status).toBe("ACCEPTED");
    const refused = await h.gql(WITHDRAW, { id: decrease.id });
    expect(codes(refused)).toEqual([["BAD_USER_INPUT", "id"]]);
    expect(refused.errors![0].message).toMatch(/already ACCEPTED/);
    expect(await iamportSchedule(h, renewalUid(sub.id, 3))).toMatchObject({ schedule_status: "scheduled", amount: 30_000 });
  });
});
