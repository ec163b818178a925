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
  for (const [code, amount, interval, taxFreeAmount, vatAmount] of [
    ["basic", 9900, "MONTH", 0, null],
    ["pro", 19_900, "MONTH", 0, null],
    ["yearly", 99_000, "YEAR", 0, null],
    // With tax parts: what an upgrade to it charges carries them.
    ["taxed", 19_900, "MONTH", 4900, 1300],
    ["weekly", 9900, "WEEK", 0, null],
    ["weekly-pro", 19_900, "WEEK", 4900, 1300],
  ] as const) {
    await h.client.request(`mutation($input: CreatePlanInput!) { createPlan(input: $input) { code } }`, {
      input: { code: `${code}-${suffix}`, name: code, amount, interval, taxFreeAmount, vatAmount },
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

const PRICE_CHANGE_FIELDS = `id planCode oldAmount newAmount effectiveAt status`;
const SHOWN = `${FIELDS} taxFreeAmount vatAmount plan { code } pendingPriceChange { ${PRICE_CHANGE_FIELDS} }`;
const RESPOND = `mutation($id: ID!, $accept: Boolean!) { respondToPriceChange(id: $id, accept: $accept) { id status } }`;

interface Shown extends Sub {
  taxFreeAmount: number;
  vatAmount: number | null;
  plan: { code: string } | null;
  pendingPriceChange: { id: string; planCode: string | null; oldAmount: number; newAmount: number; effectiveAt: string; status: string } | null;
}

/** A schedule as the emulator shows it, with its tax parts. */
type Scheduled = Awaited<ReturnType<typeof customerSchedules>>[number] & { tax_free: number; vat_amount: number | null };

/** The change as a merchant key asks for it. */
async function merchantChange(sub: Sub, code: string, proration = "NEXT_PERIOD"): Promise<Shown> {
  const r = await h.client.request<{ changeSubscriptionPlan: Shown }>(
    `mutation C($input: ChangeSubscriptionPlanInput!) { changeSubscriptionPlan(input: $input) { ${SHOWN} } }`,
    { input: { id: sub.id, planCode: plan(code), proration } },
  );
  return r.changeSubscriptionPlan;
}

async function show(id: string): Promise<Shown> {
  return (await h.client.request<{ subscription: Shown }>(`query($id: ID!) { subscription(id: $id) { ${SHOWN} } }`, { id })).subscription;
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

  it("a merchant key's upgrade is a price change carrying the plan: nothing changes until the customer consents; then its renewal charges the new plan, tax parts included", async () => {
    const sub = await start("basic");
    const before = await emulatorPaymentCount(h);
    const asked = await merchantChange(sub, "taxed");
    expect(asked).toMatchObject({
      amount: 9900,
      name: "basic",
      plan: { code: plan("basic") },
      taxFreeAmount: 0,
      vatAmount: null,
      nextPaymentAt: sub.nextPaymentAt,
      pendingPriceChange: { planCode: plan("taxed"), oldAmount: 9900, newAmount: 19_900, status: "PENDING" },
    });
    const change = asked.pendingPriceChange!;
    // A repeat answers the same change.
    expect((await merchantChange(sub, "taxed")).pendingPriceChange).toEqual(change);
    // CHARGE_NOW cannot charge before the customer consents.
    const now = await h.gql(CHANGE, { input: { id: sub.id, planCode: plan("taxed"), proration: "CHARGE_NOW" } });
    expect(now.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "proration" });
    expect(await emulatorPaymentCount(h)).toBe(before);
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => [s.merchant_uid, s.amount])).toEqual([[renewalUid(sub.id, 2), 9900]]);
    expect(await customerSchedules(h, sub.customerUid, "revoked")).toEqual([]);

    // The customer consents (their own token) within the 30 days before the change.
    const effective = unix(change.effectiveAt);
    await advanceTo(h, effective - 29 * DAY);
    const r = await h.gql<{ respondToPriceChange: { status: string } }>(RESPOND, { id: change.id, accept: true }, tokenFor(sub.customerUid));
    expect(r.data?.respondToPriceChange).toMatchObject({ status: "ACCEPTED" });
    expect(await show(sub.id)).toMatchObject({ amount: 19_900, name: "taxed", plan: { code: plan("taxed") }, taxFreeAmount: 4900, vatAmount: 1300, pendingPriceChange: null });
    // Its renewal, registered again at Iamport with the new plan's amount and parts.
    const [renewal] = (await customerSchedules(h, sub.customerUid, "scheduled")) as Scheduled[];
    expect(renewal).toMatchObject({ schedule_at: effective, amount: 19_900, tax_free: 4900, vat_amount: 1300 });

    const ran = await advanceTo(h, effective + 10);
    expect(ran.executed.filter((e) => e.merchant_uid.includes(sub.id)).map((e) => [e.merchant_uid, e.status])).toEqual([[renewal.merchant_uid, "paid"]]);
    expect(await atIamport(`/payments/find/${renewal.merchant_uid}`)).toMatchObject({ amount: 19_900, tax_free: 4900, vat_amount: 1300, name: "taxed" });
    // The renewals before it were charged at the old plan; the next one is registered at the new.
    for (const row of await paymentRows(h, sub.id)) if (row.status === "PAID") expect([row.merchant_uid, row.amount]).toEqual([row.merchant_uid, unix(row.paid_at!) < effective ? 9900 : 19_900]);
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => [s.amount, (s as Scheduled).tax_free])).toEqual([[19_900, 4900]]);
  });

  it("a merchant key's upgrade declined: the subscription ends with the last period at the old plan, nothing charged at the new one", async () => {
    const sub = await start("basic");
    const change = (await merchantChange(sub, "pro")).pendingPriceChange!;
    await advanceTo(h, unix(change.effectiveAt) - 29 * DAY);
    const r = await h.gql<{ respondToPriceChange: { status: string } }>(RESPOND, { id: change.id, accept: false }, tokenFor(sub.customerUid));
    expect(r.data?.respondToPriceChange).toMatchObject({ status: "DECLINED" });
    expect(await show(sub.id)).toMatchObject({ amount: 9900, name: "basic", plan: { code: plan("basic") }, cancelAtPeriodEnd: true, nextPaymentAt: null });
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    const ran = await advanceTo(h, unix(change.effectiveAt) + 10);
    expect(ran.executed.filter((e) => e.merchant_uid.includes(sub.id))).toEqual([]);
  });

  it("a merchant key's upgrade consented before its renewal is claimed: the renewals before it charge the old plan, and that renewal is claimed on the new plan's terms", async () => {
    const sub = await start("weekly");
    const change = (await merchantChange(sub, "weekly-pro")).pendingPriceChange!;
    const effective = unix(change.effectiveAt);
    await advanceTo(h, effective - 29 * DAY);
    const r = await h.gql<{ respondToPriceChange: { status: string } }>(RESPOND, { id: change.id, accept: true }, tokenFor(sub.customerUid));
    expect(r.data?.respondToPriceChange).toMatchObject({ status: "ACCEPTED" });
    // Its renewal is weeks away: the subscription stays on its plan, the change in flight.
    let now = await show(sub.id);
    expect(now).toMatchObject({ amount: 9900, name: "weekly", pendingPriceChange: { id: change.id, status: "ACCEPTED" } });
    expect(unix(now.nextPaymentAt!)).toBeLessThan(effective);

    while (unix(now.nextPaymentAt!) < effective) {
      // Each renewal's webhook claims the next one; reconciliation sends the notices.
      await advanceTo(h, unix(now.nextPaymentAt!) + 10);
      await h.server.reconciler.runOnce();
      now = await show(sub.id);
    }
    expect(now).toMatchObject({ amount: 19_900, name: "weekly-pro", plan: { code: plan("weekly-pro") }, taxFreeAmount: 4900, vatAmount: 1300, pendingPriceChange: null });
    const [renewal] = (await customerSchedules(h, sub.customerUid, "scheduled")) as Scheduled[];
    expect(renewal).toMatchObject({ schedule_at: effective, amount: 19_900, tax_free: 4900, vat_amount: 1300 });
    const rows = await paymentRows(h, sub.id);
    expect(rows.filter((p) => p.status === "PAID").map((p) => p.amount)).toEqual(rows.filter((p) => p.status === "PAID").map(() => 9900));
    expect(rows.filter((p) => p.status === "PAID").length).toBeGreaterThanOrEqual(4);

    // The notice the customer was sent names the plan.
    const notices = await h.client.request<{ events: { nodes: { data: { priceChange: { id: string; planCode: string } } }[] } }>(
      `query($s: ID) { events(subscriptionId: $s, type: "subscription.price_change_requested") { nodes { data } } }`,
      { s: sub.id },
    );
    expect(notices.events.nodes.map((n) => n.data.priceChange)).toEqual([expect.objectContaining({ id: change.id, planCode: plan("weekly-pro") })]);

    const ran = await advanceTo(h, effective + 10);
    expect(ran.executed.filter((e) => e.merchant_uid.includes(sub.id)).map((e) => e.status)).toEqual(["paid"]);
    expect(await atIamport(`/payments/find/${renewal.merchant_uid}`)).toMatchObject({ amount: 19_900, tax_free: 4900, vat_amount: 1300 });
  });

  it("a plan change while a price change is in flight is CONFLICT naming it, with either key; nothing changes", async () => {
    const sub = await start("pro");
    const { requestPriceChange } = await h.client.request<{ requestPriceChange: { id: string } }>(
      `mutation($input: RequestPriceChangeInput!) { requestPriceChange(input: $input) { id } }`,
      { input: { subscriptionId: sub.id, newAmount: 24_900 } },
    );
    for (const [code, proration, headers] of [
      ["basic", "NEXT_PERIOD", tokenFor(sub.customerUid)],
      ["basic", "CHARGE_NOW", tokenFor(sub.customerUid)],
      ["taxed", "CHARGE_NOW", tokenFor(sub.customerUid)],
      ["basic", "NEXT_PERIOD", undefined],
      ["taxed", "NEXT_PERIOD", undefined],
    ] as const) {
      const r = await h.gql(CHANGE, { input: { id: sub.id, planCode: plan(code), proration } }, headers);
      expect(r.errors?.[0].extensions).toMatchObject({ code: "CONFLICT", priceChangeId: requestPriceChange.id });
      expect(r.errors?.[0].message).toContain(requestPriceChange.id);
    }
    expect(await show(sub.id)).toMatchObject({ amount: 19_900, name: "pro", refundedAmount: 0, pendingPriceChange: { id: requestPriceChange.id, status: "PENDING", planCode: null } });
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => [s.merchant_uid, s.amount])).toEqual([[renewalUid(sub.id, 2), 19_900]]);
    expect(await customerSchedules(h, sub.customerUid, "revoked")).toEqual([]);
  });

  it("CHARGE_NOW upgrade: the difference carries the new plan's tax parts in proportion and is listed with the subscription's payments", async () => {
    const sub = await start("basic");
    await h.advance(10 * DAY);
    expect(await change(sub, "taxed", "CHARGE_NOW")).toMatchObject({ amount: 19_900 });
    const uidNow = `sub_${sub.id}_p1_c1`;
    const charged = await atIamport(`/payments/find/${uidNow}`);
    const parts = { taxFreeAmount: Math.floor((4900 * charged.amount) / 19_900), vatAmount: Math.floor((1300 * charged.amount) / 19_900) };
    expect(parts.taxFreeAmount).toBeGreaterThan(0);
    expect(charged).toMatchObject({ status: "paid", tax_free: parts.taxFreeAmount, vat_amount: parts.vatAmount });
    const { subscription } = await h.client.request<{ subscription: { payments: { nodes: { merchantUid: string }[] } } }>(
      `query($id: ID!) { subscription(id: $id) { payments { nodes { merchantUid amount taxFreeAmount vatAmount status subscription { id } } } } }`,
      { id: sub.id },
    );
    // Newest first: the renewal registered again at the new plan, the difference, the renewal it replaced, the first period.
    expect(subscription.payments.nodes).toEqual([
      { merchantUid: renewalUid(sub.id, 2, 2), amount: 19_900, taxFreeAmount: 4900, vatAmount: 1300, status: "SCHEDULED", subscription: { id: sub.id } },
      { merchantUid: uidNow, amount: charged.amount, ...parts, status: "PAID", subscription: { id: sub.id } },
      { merchantUid: renewalUid(sub.id, 2), amount: 9900, taxFreeAmount: 0, vatAmount: null, status: "REVOKED", subscription: { id: sub.id } },
      { merchantUid: renewalUid(sub.id, 1), amount: 9900, taxFreeAmount: 0, vatAmount: null, status: "PAID", subscription: { id: sub.id } },
    ]);
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
