import { TZDate } from "@date-fns/tz";
import { Harness, PAYMENT_FIELDS, registerCard, uid } from "../support/harness";
import {
  advanceTo,
  customerSchedules,
  emulatorNow,
  getSub,
  paymentRows,
  renewalUid,
  runRenewalsSilently,
  seoul,
  startSubHarness,
  SUB_FIELDS,
  unix,
  webhooksSettled,
} from "./helpers";

/**
 * cancelSubscription with a refund: the pro-rata share of the unused days (in
 * the billing time zone, the cancellation day used) or the whole payment,
 * refunded through Iamport once, however often or concurrently it is asked,
 * and also when the cancellation meets a renewal Iamport just made.
 */
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

const DAY = 86_400;
const FIELDS = `${SUB_FIELDS} refundedAmount taxFreeAmount`;
const START = `mutation S($input: StartSubscriptionInput!) { startSubscription(input: $input) { ${FIELDS} } }`;
const CANCEL = `mutation C($input: CancelSubscriptionInput!) { cancelSubscription(input: $input) { ${FIELDS} } }`;
const PREVIEW = `query P($id: ID!) { cancellationPreview(id: $id) { subscriptionId periodDays usedDays proratedRefund withinWithdrawalWindow } }`;
const PAYMENT = `query Pay($m: String!) { payment(merchantUid: $m) { ${PAYMENT_FIELDS} } }`;
const EVENTS = `select type, merchant_uid from events where subscription_id = ? and type = 'payment.refunded' order by id`;

interface Sub {
  id: string;
  customerUid: string;
  status: string;
  statusReason: string | null;
  currentPeriodStart: string | null;
  currentPeriodEnd: string | null;
  nextPaymentAt: string | null;
  refundedAmount: number;
}
interface Preview {
  periodDays: number;
  usedDays: number;
  proratedRefund: number;
  withinWithdrawalWindow: boolean;
}
interface IamportPayment {
  status: string;
  amount: number;
  cancel_amount: number;
  cancel_history: { amount: number; tax_free: number }[];
}

/** The instant at this wall-clock time in Seoul (the billing time zone of the tests). */
function seoulTime(year: number, month: number, day: number, hour: number, minute = 0): number {
  return unix(new TZDate(year, month - 1, day, hour, minute, 0, "Asia/Seoul"));
}

async function start(amount: number, extra: Record<string, unknown> = {}): Promise<Sub> {
  const customerUid = await registerCard(h, uid("rc"));
  const { startSubscription } = await h.client.request<{ startSubscription: Sub }>(START, {
    input: { customerUid, name: "Plan", amount, interval: "MONTH", ...extra },
  });
  await webhooksSettled(h, [renewalUid(startSubscription.id, 1)]);
  return startSubscription;
}

async function preview(id: string): Promise<Preview> {
  return (await h.client.request<{ cancellationPreview: Preview }>(PREVIEW, { id })).cancellationPreview;
}

async function cancel(id: string, refund: string): Promise<Sub> {
  return (await h.client.request<{ cancelSubscription: Sub }>(CANCEL, { input: { id, refund } })).cancelSubscription;
}

async function atIamport(merchantUid: string): Promise<IamportPayment> {
  const token = await h.iamportToken();
  return (await h.emu.get(`/payments/find/${merchantUid}`, { headers: { Authorization: token } })).data.response as IamportPayment;
}

async function refundEvents(subId: string): Promise<string[]> {
  return (await h.sql<{ merchant_uid: string }>(EVENTS, [subId])).map((e) => e.merchant_uid);
}

/** The Korean calendar year of the emulator's clock. */
async function emulatorYear(): Promise<number> {
  return new TZDate((await emulatorNow(h)) * 1000, "Asia/Seoul").getFullYear();
}

describe("cancelSubscription with a refund", () => {
  it("FULL within the withdrawal window gives back the whole payment once, however often it is asked", async () => {
    const sub = await start(9900);
    await h.advance(3 * DAY);
    expect(await preview(sub.id)).toMatchObject({ usedDays: 4, withinWithdrawalWindow: true });

    const canceled = await cancel(sub.id, "FULL");
    expect(canceled).toMatchObject({ status: "CANCELED", refundedAmount: 9900, nextPaymentAt: null });
    const again = await cancel(sub.id, "FULL");
    expect(again).toMatchObject({ status: "CANCELED", refundedAmount: 9900 });

    const p1 = renewalUid(sub.id, 1);
    const { payment } = await h.client.request<{ payment: { status: string; cancelledAmount: number } }>(PAYMENT, { m: p1 });
    expect(payment).toMatchObject({ status: "CANCELLED", cancelledAmount: 9900 });
    const at = await atIamport(p1);
    expect(at).toMatchObject({ status: "cancelled", cancel_amount: 9900 });
    expect(at.cancel_history).toHaveLength(1);
    expect(await refundEvents(sub.id)).toEqual([p1]);
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);

    // The window is WITHDRAWAL_DAYS (7) after the payment.
    const later = await start(9900);
    await h.advance(7 * DAY + 60);
    expect((await preview(later.id)).withinWithdrawalWindow).toBe(false);
    await cancel(later.id, "NONE");
  });

  it("refunds once when the same cancellation arrives twice at once", async () => {
    const sub = await start(30_000);
    await h.advance(DAY);
    const expected = (await preview(sub.id)).proratedRefund;
    expect(expected).toBeGreaterThan(0);
    const answers = await Promise.all([cancel(sub.id, "PRORATED"), cancel(sub.id, "PRORATED")]);
    for (const a of answers) expect(a.status).toBe("CANCELED");
    expect((await getSub(h, sub.id)).status).toBe("CANCELED");
    const { refundedAmount } = (await h.client.request<{ subscription: Sub }>(`query($id: ID!) { subscription(id: $id) { refundedAmount } }`, { id: sub.id }))
      .subscription;
    expect(refundedAmount).toBe(expected);
    const at = await atIamport(renewalUid(sub.id, 1));
    expect(at.cancel_history.map((c) => c.amount)).toEqual([expected]);
    expect(await refundEvents(sub.id)).toEqual([renewalUid(sub.id, 1)]);
  });

  it("racing a renewal Iamport just made: the renewal's period is the one refunded, once, and nothing runs after", async () => {
    const sub = await start(31_000);
    await runRenewalsSilently(h, [sub as never]);
    const canceled = await cancel(sub.id, "PRORATED");
    expect(canceled.status).toBe("CANCELED");
    // The renewal paid the second period, which started today: that day is used, the rest given back.
    const rows = await paymentRows(h, sub.id);
    expect(rows.filter((r) => r.period <= 2).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
    ]);
    const p2 = await atIamport(renewalUid(sub.id, 2));
    expect(p2.cancel_history).toHaveLength(1);
    expect(canceled.refundedAmount).toBe(p2.cancel_amount);
    expect(p2.cancel_amount).toBeGreaterThan(0);
    expect((await atIamport(renewalUid(sub.id, 1))).cancel_amount).toBe(0);

    // The renewal's webhook arriving late, and the cancellation repeated, change nothing.
    const impUid = rows.find((r) => r.period === 2)!.imp_uid!;
    await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: impUid });
    expect(await cancel(sub.id, "PRORATED")).toMatchObject({ status: "CANCELED", refundedAmount: p2.cancel_amount });
    expect((await atIamport(renewalUid(sub.id, 2))).cancel_history).toHaveLength(1);
    expect(await refundEvents(sub.id)).toEqual([renewalUid(sub.id, 2)]);
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    const r = await h.advance(40 * DAY);
    expect(r.executed.filter((e) => e.merchant_uid.includes(sub.id))).toEqual([]);
  });

  it("racing the renewal's webhooks (the cancellation and three deliveries at once): one refund, of the renewal's period", async () => {
    const sub = await start(31_000);
    const impUid = (await runRenewalsSilently(h, [sub as never])).get(sub.id)!;
    const [canceled, delivered] = await Promise.all([cancel(sub.id, "PRORATED"), h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: impUid, times: 3 })]);
    expect(delivered.status).toBe(200);
    expect(canceled.status).toBe("CANCELED");
    // Whichever the server heard first, the renewal paid the second period, and that is the one refunded, once.
    const p2 = await atIamport(renewalUid(sub.id, 2));
    expect(p2.cancel_history).toHaveLength(1);
    expect(p2.cancel_amount).toBeGreaterThan(0);
    expect((await atIamport(renewalUid(sub.id, 1))).cancel_amount).toBe(0);
    expect((await getSub(h, sub.id)).status).toBe("CANCELED");
    const { subscription } = await h.client.request<{ subscription: Sub }>(`query($id: ID!) { subscription(id: $id) { refundedAmount } }`, { id: sub.id });
    expect(subscription.refundedAmount).toBe(p2.cancel_amount);
    expect(await refundEvents(sub.id)).toEqual([renewalUid(sub.id, 2)]);
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    expect((await paymentRows(h, sub.id)).filter((r) => r.status === "SCHEDULED" || r.status === "PENDING")).toEqual([]);
  });

  it("PRORATED in a 31-day month, in Seoul's days near midnight, with the tax-free part split in proportion", async () => {
    const year = (await emulatorYear()) + 2;
    await advanceTo(h, seoulTime(year, 1, 15, 10));
    const sub = await start(31_000, { taxFreeAmount: 3100 });
    expect(await preview(sub.id)).toEqual({ subscriptionId: sub.id, periodDays: 31, usedDays: 1, proratedRefund: 30_000, withinWithdrawalWindow: true });
    await advanceTo(h, seoulTime(year, 1, 20, 23, 59));
    expect(await preview(sub.id)).toMatchObject({ usedDays: 6, proratedRefund: 25_000 });
    await advanceTo(h, seoulTime(year, 1, 21, 0, 1));
    expect(await preview(sub.id)).toMatchObject({ usedDays: 7, proratedRefund: 24_000, withinWithdrawalWindow: true });

    expect(await cancel(sub.id, "PRORATED")).toMatchObject({ status: "CANCELED", refundedAmount: 24_000 });
    const at = await atIamport(renewalUid(sub.id, 1));
    expect(at.cancel_history.map((c) => [c.amount, c.tax_free])).toEqual([[24_000, 2400]]);
    expect(at).toMatchObject({ status: "paid", cancel_amount: 24_000 });
  });

  it("PRORATED at several days of a period across the end of February, either side of Seoul's midnight", async () => {
    const year = (await emulatorYear()) + 1;
    const febDays = new Date(Date.UTC(year, 2, 0)).getUTCDate();
    await advanceTo(h, seoulTime(year, 2, 10, 23, 50));
    const sub = await start(febDays * 1000);
    expect(seoul(sub.currentPeriodEnd)).toBe(`${year}-03-10T23:50`);
    const at = async (month: number, day: number, hour: number, minute: number) => {
      await advanceTo(h, seoulTime(year, month, day, hour, minute));
      return preview(sub.id);
    };
    expect(await at(2, 10, 23, 59)).toMatchObject({ periodDays: febDays, usedDays: 1, proratedRefund: (febDays - 1) * 1000 });
    expect(await at(2, 11, 0, 1)).toMatchObject({ usedDays: 2, proratedRefund: (febDays - 2) * 1000 });
    // The last day of February, and the first of March a few minutes later.
    expect(await at(2, febDays, 23, 59)).toMatchObject({ usedDays: febDays - 9, proratedRefund: 9000 });
    expect(await at(3, 1, 0, 1)).toMatchObject({ usedDays: febDays - 8, proratedRefund: 8000 });
    expect(await cancel(sub.id, "PRORATED")).toMatchObject({ status: "CANCELED", refundedAmount: 8000 });
    expect((await atIamport(renewalUid(sub.id, 1))).cancel_history.map((c) => c.amount)).toEqual([8000]);
  });

  it("PRORATED at several days of a 30-day month, either side of Seoul's midnight (still the previous day in UTC); NONE refunds nothing", async () => {
    const year = await emulatorYear();
    await advanceTo(h, seoulTime(year, 4, 5, 23, 50));
    const sub = await start(30_000);
    const none = await start(30_000);
    const at = async (day: number, hour: number, minute: number) => {
      await advanceTo(h, seoulTime(year, 4, day, hour, minute));
      return preview(sub.id);
    };
    expect(await at(5, 23, 59)).toMatchObject({ periodDays: 30, usedDays: 1, proratedRefund: 29_000 });
    expect(await at(6, 0, 1)).toMatchObject({ usedDays: 2, proratedRefund: 28_000 });
    // The withdrawal window: seven days from the moment of payment.
    expect(await at(12, 23, 45)).toMatchObject({ usedDays: 8, proratedRefund: 22_000, withinWithdrawalWindow: true });
    expect(await at(13, 0, 1)).toMatchObject({ usedDays: 9, proratedRefund: 21_000, withinWithdrawalWindow: false });
    expect(await at(30, 23, 59)).toMatchObject({ usedDays: 26, proratedRefund: 4_000 });
    expect(await cancel(sub.id, "PRORATED")).toMatchObject({ status: "CANCELED", refundedAmount: 4_000 });
    expect((await atIamport(renewalUid(sub.id, 1))).cancel_history.map((c) => c.amount)).toEqual([4_000]);
    expect(await cancel(none.id, "NONE")).toMatchObject({ status: "CANCELED", refundedAmount: 0 });
    expect((await atIamport(renewalUid(none.id, 1))).cancel_amount).toBe(0);
  });

  it("refuses a refund with atPeriodEnd (a refund ends the subscription now)", async () => {
    const sub = await start(10_000);
    const r = await h.gql(CANCEL, { input: { id: sub.id, atPeriodEnd: true, refund: "PRORATED" } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "refund" });
    expect((await getSub(h, sub.id)).status).toBe("ACTIVE");
  });
});
