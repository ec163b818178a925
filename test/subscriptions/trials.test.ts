import { mintCustomerToken } from "../../src/security/customer-token";
import { Harness, registerCard, uid } from "../support/harness";
import {
  advanceTo,
  customerSchedules,
  emulatorNow,
  emulatorPaymentCount,
  iamportSchedule,
  paymentRows,
  renewalUid,
  startSubHarness,
  unix,
} from "./helpers";

const SECRET = "trials-test-secret-0123456789abcdefghij";
const DAY = 86_400;
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness({ env: { CUSTOMER_TOKEN_SECRET: SECRET } });
});
afterAll(async () => {
  await h?.close();
});

const TRIAL_FIELDS = `id status statusReason amount trialEnd conversionConsentAt nextPaymentAt currentPeriod: currentPeriodStart currentPeriodEnd canceledAt plan { code }`;
interface Trial {
  id: string;
  status: string;
  statusReason: string | null;
  amount: number;
  trialEnd: string | null;
  conversionConsentAt: string | null;
  nextPaymentAt: string | null;
  currentPeriod: string | null;
  currentPeriodEnd: string | null;
  canceledAt: string | null;
  plan: { code: string } | null;
}
const START = `mutation($input: StartSubscriptionInput!) { startSubscription(input: $input) { ${TRIAL_FIELDS} } }`;
const CONSENT = `mutation($id: ID!) { consentToTrialConversion(subscriptionId: $id) { ${TRIAL_FIELDS} } }`;
const GET = `query($id: ID!) { subscription(id: $id) { ${TRIAL_FIELDS} } }`;

async function startTrial(input: Record<string, unknown>): Promise<Trial> {
  return (await h.client.request<{ startSubscription: Trial }>(START, { input })).startSubscription;
}
async function get(id: string): Promise<Trial> {
  return (await h.client.request<{ subscription: Trial }>(GET, { id })).subscription;
}
function tokenFor(customerUid: string): Record<string, string> {
  return { authorization: `Bearer ${mintCustomerToken(SECRET, customerUid, 600)}` };
}
async function eventTypes(subscriptionId: string): Promise<string[]> {
  const r = await h.client.request<{ events: { nodes: { type: string }[] } }>(`query($s: ID) { events(subscriptionId: $s, first: 50) { nodes { type } } }`, {
    s: subscriptionId,
  });
  return r.events.nodes.map((n) => n.type).reverse();
}
const codes = (r: { errors?: { extensions?: { code?: string; field?: string } }[] }) => (r.errors ?? []).map((e) => [e.extensions?.code, e.extensions?.field]);

describe("a free trial", () => {
  it("with consent is charged at trialEnd exactly once, then renews", async () => {
    const plan = uid("trial");
    await h.client.request(`mutation($c: String!) { createPlan(input: {code: $c, name: "Trial plan", amount: 7900, interval: MONTH, trialDays: 14}) { code } }`, {
      c: plan,
    });
    const customerUid = await registerCard(h, uid("c"));
    const before = await emulatorNow(h);
    const paymentsBefore = await emulatorPaymentCount(h);
    const sub = await startTrial({ customerUid, planCode: plan });
    const after = await emulatorNow(h);

    expect(sub).toMatchObject({ status: "TRIALING", amount: 7_900, conversionConsentAt: null, nextPaymentAt: null, plan: { code: plan } });
    // Fourteen days from the start, by Iamport's clock, however long the call took.
    expect(unix(sub.trialEnd!)).toBeGreaterThanOrEqual(before + 14 * DAY);
    expect(unix(sub.trialEnd!)).toBeLessThanOrEqual(after + 14 * DAY);
    expect(sub.statusReason).toMatch(/consent/);
    // Nothing charged, nothing scheduled, no order recorded.
    expect(await paymentRows(h, sub.id)).toEqual([]);
    expect(await customerSchedules(h, customerUid)).toEqual([]);

    // The customer consents from its own app.
    const consent = await h.gql<{ consentToTrialConversion: Trial }>(CONSENT, { id: sub.id }, tokenFor(customerUid));
    expect(consent.errors).toBeUndefined();
    const consented = consent.data!.consentToTrialConversion;
    expect(consented).toMatchObject({ status: "TRIALING", trialEnd: sub.trialEnd, nextPaymentAt: sub.trialEnd });
    expect(unix(consented.conversionConsentAt!)).toBeGreaterThanOrEqual(before);
    const first = await iamportSchedule(h, renewalUid(sub.id, 1));
    expect(first).toMatchObject({ schedule_status: "scheduled", amount: 7_900, schedule_at: unix(sub.trialEnd!) });
    // Consenting again (the merchant recording it too) changes nothing.
    const again = (await h.client.request<{ consentToTrialConversion: Trial }>(CONSENT, { id: sub.id })).consentToTrialConversion;
    expect(again.conversionConsentAt).toBe(consented.conversionConsentAt);
    expect(await customerSchedules(h, customerUid)).toHaveLength(1);

    const run = await advanceTo(h, unix(sub.trialEnd!) + 10);
    expect(run.executed.filter((e) => e.merchant_uid.startsWith(`sub_${sub.id}_`)).map((e) => [e.merchant_uid, e.status])).toEqual([
      [renewalUid(sub.id, 1), "paid"],
    ]);
    await h.server.reconciler.runOnce();
    const active = await get(sub.id);
    expect(active).toMatchObject({ status: "ACTIVE", statusReason: null, currentPeriod: sub.trialEnd });
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.kind, p.status, p.amount])).toEqual([
      [1, "SCHEDULE", "PAID", 7_900],
      [2, "SCHEDULE", "SCHEDULED", 7_900],
    ]);
    expect(await emulatorPaymentCount(h)).toBe(paymentsBefore + 1);
    expect(await eventTypes(sub.id)).toEqual(["subscription.started", "payment.paid", "subscription.renewed"]);
  });

  it("without consent ends CANCELED at trialEnd: nothing charged, nothing left scheduled at Iamport", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const paymentsBefore = await emulatorPaymentCount(h);
    const sub = await startTrial({ customerUid, name: "No consent", amount: 5_000, interval: "MONTH", trialDays: 7 });
    expect(sub.status).toBe("TRIALING");

    // Just before the end the trial still runs.
    await advanceTo(h, unix(sub.trialEnd!) - 60);
    await h.server.reconciler.runOnce();
    expect((await get(sub.id)).status).toBe("TRIALING");

    await advanceTo(h, unix(sub.trialEnd!) + 1);
    const report = await h.server.reconciler.runOnce();
    expect(report.trialsEnded).toBeGreaterThanOrEqual(1);
    const ended = await get(sub.id);
    expect(ended).toMatchObject({ status: "CANCELED", nextPaymentAt: null });
    expect(ended.statusReason).toMatch(/trial ended .* without the customer's consent/);
    expect(ended.canceledAt).not.toBeNull();
    expect(await paymentRows(h, sub.id)).toEqual([]);
    expect(await customerSchedules(h, customerUid)).toEqual([]);
    expect(await emulatorPaymentCount(h)).toBe(paymentsBefore);
    // The trial's notice went out with the first sweep (a 7-day trial is within TRIAL_NOTICE_DAYS from its start).
    expect(await eventTypes(sub.id)).toEqual(["subscription.started", "subscription.trial_ending", "subscription.canceled"]);
    // Consent after the end converts nothing.
    const late = await h.gql(CONSENT, { id: sub.id });
    expect(codes(late)).toEqual([["BAD_USER_INPUT", "subscriptionId"]]);
  });

  it("refuses consent given more than 30 days before trialEnd, and takes it once the window opens", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startTrial({ customerUid, name: "Long trial", amount: 3_000, interval: "MONTH", trialDays: 45 });
    const early = await h.gql(CONSENT, { id: sub.id }, tokenFor(customerUid));
    expect(codes(early)).toEqual([["BAD_USER_INPUT", "subscriptionId"]]);
    expect(early.errors![0].message).toMatch(/within the 30 days before it ends/);
    const opens = unix(sub.trialEnd!) - 30 * DAY;
    expect(early.errors![0].message).toContain(new Date(opens * 1000).toISOString());
    expect((await get(sub.id)).conversionConsentAt).toBeNull();
    expect(await customerSchedules(h, customerUid)).toEqual([]);

    await advanceTo(h, opens + 60);
    const ok = await h.gql<{ consentToTrialConversion: Trial }>(CONSENT, { id: sub.id }, tokenFor(customerUid));
    expect(ok.errors).toBeUndefined();
    expect(ok.data!.consentToTrialConversion.conversionConsentAt).not.toBeNull();
    expect(await iamportSchedule(h, renewalUid(sub.id, 1))).toMatchObject({ schedule_status: "scheduled", schedule_at: unix(sub.trialEnd!) });
    // Canceled during the trial: the consented first charge is revoked at Iamport.
    await h.client.request(`mutation($id: ID!) { cancelSubscription(input: {id: $id}) { status } }`, { id: sub.id });
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
  });

  it("takes consent from a customer token only for the customer's own subscription", async () => {
    const owner = await registerCard(h, uid("c"));
    const stranger = await registerCard(h, uid("c"));
    const sub = await startTrial({ customerUid: owner, name: "Mine", amount: 3_000, interval: "MONTH", trialDays: 10 });
    const r = await h.gql(CONSENT, { id: sub.id }, tokenFor(stranger));
    expect(codes(r)).toEqual([["FORBIDDEN", undefined]]);
    expect((await get(sub.id)).conversionConsentAt).toBeNull();
    expect(await customerSchedules(h, owner)).toEqual([]);
    // A subscription that is not in a trial has nothing to consent to.
    const plain = (await h.client.request<{ startSubscription: Trial }>(START, { input: { customerUid: stranger, name: "Plain", amount: 1_000, interval: "MONTH" } }))
      .startSubscription;
    expect(codes(await h.gql(CONSENT, { id: plain.id }, tokenFor(stranger)))).toEqual([["BAD_USER_INPUT", "subscriptionId"]]);
  });

  it("needs a registered card, and cannot be combined with startAt", async () => {
    const r = await h.gql(START, { input: { customerUid: uid("nocard"), name: "x", amount: 1_000, interval: "MONTH", trialDays: 7 } });
    expect(r.errors?.[0].extensions?.code).toBe("NOT_FOUND");
    const customerUid = await registerCard(h, uid("c"));
    const both = await h.gql(START, {
      input: { customerUid, name: "x", amount: 1_000, interval: "MONTH", trialDays: 7, startAt: new Date(Date.now() + 86_400_000).toISOString() },
    });
    expect(codes(both)).toEqual([["BAD_USER_INPUT", "startAt"]]);
  });
});
