import { prorate } from "../../src/billing/domain/proration";
import { mintCustomerToken } from "../../src/security/customer-token";
import { Harness, registerCard, uid } from "../support/harness";
import {
  advanceTo,
  customerSchedules,
  emulatorNow,
  emulatorPaymentCount,
  paymentRows,
  renewalUid,
  startSubHarness,
  SUB_FIELDS,
  unix,
  webhooksSettled,
} from "./helpers";

/**
 * changeSubscriptionPlan: NEXT_PERIOD changes only the next schedule (replaced
 * at Iamport once); CHARGE_NOW charges an upgrade's difference for the rest of
 * the period once, and refunds a downgrade's once. An upgrade needs the
 * customer's consent: the customer's own token gives it, a merchant key's
 * upgrade is refused.
 */
const SECRET = "plan-change-secret-0123456789abcdefghij";
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness({ env: { CUSTOMER_TOKEN_SECRET: SECRET } });
  for (const [code, amount] of [
    ["basic", 9900],
    ["pro", 19_900],
    ["yearly", 99_000],
  ] as const) {
    await h.client.request(`mutation($input: CreatePlanInput!) { createPlan(input: $input) { code } }`, {
      input: { code: `${code}-${suffix}`, name: code, amount, interval: code === "yearly" ? "YEAR" : "MONTH" },
    });
  }
});
afterAll(async () => {
  await h?.close();
});

const suffix = uid("p").slice(-6);
const plan = (code: string) => `${code}-${suffix}`;
const DAY = 86_400;
const FIELDS = `${SUB_FIELDS} refundedAmount`;
const CHANGE = `mutation C($input: ChangeSubscriptionPlanInput!) { changeSubscriptionPlan(input: $input) { ${FIELDS} } }`;

interface Sub {
  id: string;
  customerUid: string;
  name: string;
  amount: number;
  status: string;
  currentPeriodStart: string;
  currentPeriodEnd: string;
  nextPaymentAt: string | null;
  refundedAmount: number;
}

async function start(code: string): Promise<Sub> {
  const customerUid = await registerCard(h, uid("pc"));
  const { startSubscription } = await h.client.request<{ startSubscription: Sub }>(
    `mutation($input: StartSubscriptionInput!) { startSubscription(input: $input) { ${FIELDS} } }`,
    { input: { customerUid, planCode: plan(code) } },
  );
  await webhooksSettled(h, [renewalUid(startSubscription.id, 1)]);
  return startSubscription;
}

const tokenFor = (customerUid: string) => ({ authorization: `Bearer ${mintCustomerToken(SECRET, customerUid, 600)}` });

/** The change as the customer asks for it, with their own token (their consent to an upgrade's price). */
async function change(sub: Sub, code: string, proration: string): Promise<Sub> {
  const r = await h.gql<{ changeSubscriptionPlan: Sub }>(CHANGE, { input: { id: sub.id, planCode: plan(code), proration } }, tokenFor(sub.customerUid));
  if (!r.data?.changeSubscriptionPlan) throw new Error(JSON.stringify(r.errors));
  return r.data.changeSubscriptionPlan;
}

async function atIamport(path: string) {
  const token = await h.iamportToken();
  return (await h.emu.get(path, { headers: { Authorization: token } })).data.response;
}

describe("changeSubscriptionPlan", () => {
  it("NEXT_PERIOD: nothing charged now; the pending renewal is replaced at Iamport once, with the new amount at the same time", async () => {
    const sub = await start("basic");
    const before = await emulatorPaymentCount(h);
    const changed = await change(sub, "pro", "NEXT_PERIOD");
    expect(changed).toMatchObject({ amount: 19_900, name: "pro", nextPaymentAt: sub.nextPaymentAt, currentPeriodEnd: sub.currentPeriodEnd });
    expect(await change(sub, "pro", "NEXT_PERIOD")).toMatchObject({ amount: 19_900, nextPaymentAt: sub.nextPaymentAt });
    expect(await emulatorPaymentCount(h)).toBe(before);
    const scheduled = await customerSchedules(h, sub.customerUid, "scheduled");
    expect(scheduled.map((s) => [s.merchant_uid, s.amount, s.schedule_at])).toEqual([[renewalUid(sub.id, 2, 2), 19_900, unix(sub.nextPaymentAt!)]]);
    expect((await customerSchedules(h, sub.customerUid, "revoked")).map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 2)]);

    const r = await advanceTo(h, unix(sub.nextPaymentAt!) + 10);
    expect(r.executed.filter((e) => e.merchant_uid.includes(sub.id)).map((e) => [e.merchant_uid, e.status])).toEqual([[renewalUid(sub.id, 2, 2), "paid"]]);
    expect((await atIamport(`/payments/find/${renewalUid(sub.id, 2, 2)}`)).amount).toBe(19_900);
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => [s.merchant_uid, s.amount])).toEqual([[renewalUid(sub.id, 3), 19_900]]);
  });

  it("CHARGE_NOW upgrade: the difference for the unused days charged once, the new amount from the next renewal", async () => {
    const sub = await start("basic");
    await h.advance(10 * DAY);
    const now = new Date((await emulatorNow(h)) * 1000);
    const expected = prorate({ start: new Date(sub.currentPeriodStart), end: new Date(sub.currentPeriodEnd) }, now, 10_000, h.config.billingTimeZone).proratedRefund;
    expect(expected).toBeGreaterThan(0);
    const before = await emulatorPaymentCount(h);

    const [a, b] = await Promise.all([change(sub, "pro", "CHARGE_NOW"), change(sub, "pro", "CHARGE_NOW")]);
    for (const x of [a, b]) expect(x.amount).toBe(19_900);
    expect(await change(sub, "pro", "CHARGE_NOW")).toMatchObject({ amount: 19_900 });
    expect(await emulatorPaymentCount(h)).toBe(before + 1);
    const charged = await atIamport(`/payments/find/sub_${sub.id}_p1_c1`);
    expect(charged).toMatchObject({ status: "paid", amount: expected });
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => [s.amount, s.schedule_at])).toEqual([[19_900, unix(sub.nextPaymentAt!)]]);
  });

  it("CHARGE_NOW downgrade: the difference for the unused days refunded once from the period's payment", async () => {
    const sub = await start("pro");
    await h.advance(5 * DAY);
    const now = new Date((await emulatorNow(h)) * 1000);
    const expected = prorate({ start: new Date(sub.currentPeriodStart), end: new Date(sub.currentPeriodEnd) }, now, 10_000, h.config.billingTimeZone).proratedRefund;
    const changed = await change(sub, "basic", "CHARGE_NOW");
    expect(changed).toMatchObject({ amount: 9900, refundedAmount: expected, status: "ACTIVE" });
    expect(await change(sub, "basic", "CHARGE_NOW")).toMatchObject({ refundedAmount: expected });
    const p1 = await atIamport(`/payments/find/${renewalUid(sub.id, 1)}`);
    expect(p1.cancel_history.map((c: { amount: number }) => c.amount)).toEqual([expected]);
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.amount)).toEqual([9900]);
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.attempt, r.status, r.amount])).toEqual([
      [1, 1, "PAID", 19_900],
      [2, 1, "REVOKED", 19_900],
      [2, 2, "SCHEDULED", 9900],
    ]);
  });

  it("a merchant key's upgrade is FORBIDDEN: nothing charged, the subscription and its renewal at Iamport untouched", async () => {
    const sub = await start("basic");
    const before = await emulatorPaymentCount(h);
    for (const proration of ["NEXT_PERIOD", "CHARGE_NOW"]) {
      const r = await h.gql(CHANGE, { input: { id: sub.id, planCode: plan("pro"), proration } });
      expect(r.errors?.[0].extensions?.code).toBe("FORBIDDEN");
      expect(r.errors?.[0].message).toContain("requestPriceChange");
    }
    expect(await emulatorPaymentCount(h)).toBe(before);
    const { subscription } = await h.client.request<{ subscription: Sub }>(`query($id: ID!) { subscription(id: $id) { ${FIELDS} } }`, { id: sub.id });
    expect(subscription).toMatchObject({ amount: 9900, name: "basic", nextPaymentAt: sub.nextPaymentAt });
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => [s.merchant_uid, s.amount])).toEqual([[renewalUid(sub.id, 2), 9900]]);
    expect(await customerSchedules(h, sub.customerUid, "revoked")).toEqual([]);
  });

  it("a merchant key's downgrade goes through", async () => {
    const sub = await start("pro");
    const { changeSubscriptionPlan } = await h.client.request<{ changeSubscriptionPlan: Sub }>(CHANGE, {
      input: { id: sub.id, planCode: plan("basic"), proration: "NEXT_PERIOD" },
    });
    expect(changeSubscriptionPlan).toMatchObject({ amount: 9900, name: "basic", nextPaymentAt: sub.nextPaymentAt });
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.amount)).toEqual([9900]);
  });

  it("refuses a plan of another interval", async () => {
    const sub = await start("basic");
    const r = await h.gql(CHANGE, { input: { id: sub.id, planCode: plan("yearly") } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "planCode" });
  });
});
