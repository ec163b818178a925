import { Harness, PAYMENT_FIELDS, registerCard, uid } from "../support/harness";
import { advancePastNextPayment, iamportSchedule, renewalUid, startSubHarness, SUB_FIELDS } from "./helpers";

/** VAT and tax-free parts: stored, shown, carried to Iamport (read back from the emulator) and split on refunds. */

let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

const FIELDS = `${PAYMENT_FIELDS} taxFreeAmount vatAmount`;
const CHARGE = `mutation C($input: ChargeAgainInput!) { chargeAgain(input: $input) { ${FIELDS} } }`;
const SCHEDULE = `mutation S($input: SchedulePaymentsInput!) { schedulePayments(input: $input) { ${FIELDS} } }`;
const REFUND = `mutation R($input: RefundPaymentInput!) { refundPayment(input: $input) { ${FIELDS} } }`;
const START = `mutation St($input: StartSubscriptionInput!) { startSubscription(input: $input) { ${SUB_FIELDS} taxFreeAmount vatAmount } }`;

interface Pay {
  merchantUid: string;
  impUid: string | null;
  status: string;
  amount: number;
  cancelledAmount: number;
  taxFreeAmount: number;
  vatAmount: number | null;
}

interface IamportPayment {
  amount: number;
  cancel_amount: number;
  tax_free: number;
  vat_amount: number | null;
  cancel_history: { amount: number; tax_free: number; vat_amount: number | null }[];
}

async function iamport<T>(path: string): Promise<T> {
  const token = await h.iamportToken();
  return (await h.emu.get(path, { headers: { Authorization: token } })).data.response as T;
}

async function charge(input: Record<string, unknown>): Promise<Pay> {
  const customerUid = await registerCard(h, uid("tx"));
  return (await h.client.request<{ chargeAgain: Pay }>(CHARGE, { input: { customerUid, name: "Book and service", ...input } })).chargeAgain;
}

describe("tax-free and VAT parts", () => {
  it("chargeAgain sends them to Iamport and shows them on the payment", async () => {
    const p = await charge({ amount: 33_000, taxFreeAmount: 11_000, vatAmount: 2000 });
    expect(p).toMatchObject({ status: "PAID", taxFreeAmount: 11_000, vatAmount: 2000 });
    const at = await iamport<IamportPayment>(`/payments/${p.impUid}`);
    expect(at).toMatchObject({ amount: 33_000, tax_free: 11_000, vat_amount: 2000 });

    // Omitted: nothing tax-free, and the VAT left to Iamport.
    const plain = await charge({ amount: 5000 });
    expect(plain).toMatchObject({ taxFreeAmount: 0, vatAmount: null });
    expect(await iamport<IamportPayment>(`/payments/${plain.impUid}`)).toMatchObject({ tax_free: 0, vat_amount: null });
  });

  it("refuses parts that are not whole won between 0 and the amount, before Iamport is asked", async () => {
    const customerUid = await registerCard(h, uid("tx"));
    for (const [input, field] of [
      [{ taxFreeAmount: 10_001 }, "taxFreeAmount"],
      [{ taxFreeAmount: -1 }, "taxFreeAmount"],
      [{ vatAmount: 10_001 }, "vatAmount"],
      [{ vatAmount: -5 }, "vatAmount"],
    ] as const) {
      const r = await h.gql(CHARGE, { input: { customerUid, amount: 10_000, name: "x", ...input } });
      expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
    }
    const count = await h.sql<{ n: string }>(`select count(*) as n from payments where customer_uid = ?`, [customerUid]);
    expect(Number(count[0].n)).toBe(0);
  });

  it("refunds split the tax-free and VAT parts in proportion, adding up to exactly the payment's once all is refunded", async () => {
    const p = await charge({ amount: 10_000, taxFreeAmount: 3333, vatAmount: 606 });
    const refund = async (amount?: number) =>
      (await h.client.request<{ refundPayment: Pay }>(REFUND, { input: { merchantUid: p.merchantUid, amount, reason: "returned" } })).refundPayment;
    expect((await refund(3000)).cancelledAmount).toBe(3000);
    expect((await refund(3000)).cancelledAmount).toBe(6000);
    expect(await refund()).toMatchObject({ status: "CANCELLED", cancelledAmount: 10_000 });

    const at = await iamport<IamportPayment>(`/payments/${p.impUid}`);
    // floor(3333 * 3000 / 10000) = 999, floor(3333 * 6000 / 10000) - 999 = 1000, and the rest 1334.
    expect(at.cancel_history.map((c) => [c.amount, c.tax_free, c.vat_amount])).toEqual([
      [3000, 999, 181],
      [3000, 1000, 182],
      [4000, 1334, 243],
    ]);
  });

  it("schedulePayments registers them with Iamport's schedule, and the charge it runs carries them", async () => {
    const customerUid = await registerCard(h, uid("tx"));
    const now = (await h.emu.get("/__emulator/clock")).data.now as number;
    const { schedulePayments } = await h.client.request<{ schedulePayments: Pay[] }>(SCHEDULE, {
      input: {
        customerUid,
        schedules: [{ scheduleAt: new Date((now + 3600) * 1000).toISOString(), amount: 22_000, name: "Lesson", taxFreeAmount: 22_000, vatAmount: 0 }],
      },
    });
    expect(schedulePayments[0]).toMatchObject({ status: "SCHEDULED", taxFreeAmount: 22_000, vatAmount: 0 });
    const s = await iamport<{ tax_free: number; vat_amount: number | null }>(`/subscribe/payments/schedule/${schedulePayments[0].merchantUid}`);
    expect(s).toMatchObject({ tax_free: 22_000, vat_amount: 0 });
    await h.advance(3700);
    const ran = await iamport<IamportPayment>(`/payments/find/${schedulePayments[0].merchantUid}`);
    expect(ran).toMatchObject({ amount: 22_000, tax_free: 22_000, vat_amount: 0 });
  });

  it("a subscription carries them to its first charge and to each renewal Iamport's schedule makes", async () => {
    const customerUid = await registerCard(h, uid("tx"));
    const { startSubscription: sub } = await h.client.request<{
      startSubscription: { id: string; nextPaymentAt: string; taxFreeAmount: number; vatAmount: number | null };
    }>(START, { input: { customerUid, name: "Magazine", amount: 12_000, interval: "MONTH", taxFreeAmount: 7000, vatAmount: 454 } });
    expect(sub).toMatchObject({ taxFreeAmount: 7000, vatAmount: 454 });
    const first = await iamport<IamportPayment>(`/payments/find/${renewalUid(sub.id, 1)}`);
    expect(first).toMatchObject({ amount: 12_000, tax_free: 7000, vat_amount: 454 });
    expect(await iamportSchedule(h, renewalUid(sub.id, 2))).toMatchObject({ amount: 12_000, tax_free: 7000, vat_amount: 454 });
    await advancePastNextPayment(h, sub);
    expect(await iamport<IamportPayment>(`/payments/find/${renewalUid(sub.id, 2)}`)).toMatchObject({ tax_free: 7000, vat_amount: 454 });
    const rows = await h.sql<{ period: number; tax_free_amount: number; vat_amount: number | null }>(
      `select period, tax_free_amount, vat_amount from payments where subscription_id = ? order by period`,
      [sub.id],
    );
    expect(rows.map((r) => [r.period, r.tax_free_amount, r.vat_amount])).toEqual([
      [1, 7000, 454],
      [2, 7000, 454],
      [3, 7000, 454],
    ]);
  });

  it("a plan's parts are taken by the subscriptions started from it", async () => {
    const code = uid("taxplan").replace(/[^a-z0-9-]/gi, "-").slice(0, 40);
    const { createPlan } = await h.client.request<{ createPlan: { taxFreeAmount: number; vatAmount: number | null } }>(
      `mutation($input: CreatePlanInput!) { createPlan(input: $input) { taxFreeAmount vatAmount } }`,
      { input: { code, name: "Lessons", amount: 50_000, interval: "MONTH", taxFreeAmount: 50_000, vatAmount: 0 } },
    );
    expect(createPlan).toEqual({ taxFreeAmount: 50_000, vatAmount: 0 });
    const customerUid = await registerCard(h, uid("tx"));
    const { startSubscription: sub } = await h.client.request<{ startSubscription: { id: string; taxFreeAmount: number; vatAmount: number | null } }>(
      START,
      { input: { customerUid, planCode: code } },
    );
    expect(sub).toMatchObject({ taxFreeAmount: 50_000, vatAmount: 0 });
    expect(await iamport<IamportPayment>(`/payments/find/${renewalUid(sub.id, 1)}`)).toMatchObject({ amount: 50_000, tax_free: 50_000, vat_amount: 0 });
    const bad = await h.gql(`mutation($input: CreatePlanInput!) { createPlan(input: $input) { code } }`, {
      input: { code: `${code}-x`, name: "x", amount: 100, interval: "MONTH", taxFreeAmount: 101 },
    });
    expect(bad.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "taxFreeAmount" });
  });
});
