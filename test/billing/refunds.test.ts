import { Harness, PAYMENT_FIELDS, registerCard, startHarness, TEST_CARDS, uid } from "../support/harness";

/** refundPayment: partial and full refunds with Iamport's checksum, refused refunds, lost answers. */

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const CHARGE = `mutation C($input: ChargeAgainInput!) { chargeAgain(input: $input) { ${PAYMENT_FIELDS} } }`;
const REFUND = `mutation R($input: RefundPaymentInput!) { refundPayment(input: $input) { ${PAYMENT_FIELDS} } }`;

type Pay = { merchantUid: string; impUid: string | null; status: string; amount: number; paidAmount: number | null; cancelledAmount: number; cancelledAt: string | null; failReason: string | null };

async function paid(amount: number, card?: string): Promise<Pay> {
  const customerUid = await registerCard(h, uid("rf"), card);
  const { chargeAgain } = await h.client.request<{ chargeAgain: Pay }>(CHARGE, { input: { customerUid, amount, name: "Refundable" } });
  return chargeAgain;
}

async function refund(merchantUid: string, amount?: number, reason = "customer asked"): Promise<Pay> {
  return (await h.client.request<{ refundPayment: Pay }>(REFUND, { input: { merchantUid, amount, reason } })).refundPayment;
}

async function atIamport(impUid: string) {
  const token = await h.iamportToken();
  return (await h.emu.get(`/payments/${impUid}`, { headers: { Authorization: token } })).data.response as {
    status: string;
    amount: number;
    cancel_amount: number;
    cancel_history: unknown[];
  };
}

/** Waits until the emulator holds the answer of a call (a "hold" fault); returns its id. */
async function heldCall(): Promise<number> {
  for (;;) {
    const held = (await h.emu.get<{ held: { id: number }[] }>("/__emulator/faults/held")).data.held;
    if (held.length > 0) return held[0].id;
  }
}

async function row(merchantUid: string) {
  return (
    await h.sql<{ status: string; cancelled_amount: number; paid_amount: number | null }>(
      `select status, cancelled_amount, paid_amount from payments where merchant_uid = ?`,
      [merchantUid],
    )
  )[0];
}

describe("refundPayment", () => {
  it("refunds partially (still PAID), then the rest (CANCELLED), agreeing with Iamport each time", async () => {
    const p = await paid(10_000);
    expect(p.status).toBe("PAID");

    const partial = await refund(p.merchantUid, 3000);
    // cancelledAt is the time of the latest refund, partial ones included (Iamport's cancel_history).
    expect(partial).toMatchObject({ status: "PAID", paidAmount: 10_000, cancelledAmount: 3000, cancelledAt: expect.any(String) });
    expect(await atIamport(p.impUid!)).toMatchObject({ status: "paid", cancel_amount: 3000 });

    const second = await refund(p.merchantUid, 2000);
    expect(second).toMatchObject({ status: "PAID", cancelledAmount: 5000 });

    const rest = await refund(p.merchantUid); // amount omitted: the whole remaining balance
    expect(rest).toMatchObject({ status: "CANCELLED", paidAmount: 10_000, cancelledAmount: 10_000 });
    expect(rest.cancelledAt).toEqual(expect.any(String));
    const iamport = await atIamport(p.impUid!);
    expect(iamport).toMatchObject({ status: "cancelled", cancel_amount: 10_000 });
    expect(iamport.cancel_history).toHaveLength(3);
    expect(await row(p.merchantUid)).toMatchObject({ status: "CANCELLED", cancelled_amount: 10_000 });

    // Nothing is left: a cancelled payment cannot be refunded again.
    const again = await h.gql(REFUND, { input: { merchantUid: p.merchantUid, reason: "again" } });
    expect(again.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "merchantUid" });
  });

  it("a full refund at once", async () => {
    const p = await paid(4000);
    const r = await refund(p.merchantUid);
    expect(r).toMatchObject({ status: "CANCELLED", cancelledAmount: 4000 });
  });

  it("refuses more than the refundable balance with BAD_USER_INPUT (amount), before and after a partial refund", async () => {
    const p = await paid(5000);
    const over = await h.gql(REFUND, { input: { merchantUid: p.merchantUid, amount: 5001, reason: "x" } });
    expect(over.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "amount" });
    await refund(p.merchantUid, 1000);
    const over2 = await h.gql(REFUND, { input: { merchantUid: p.merchantUid, amount: 4001, reason: "x" } });
    expect(over2.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "amount" });
    expect(await atIamport(p.impUid!)).toMatchObject({ status: "paid", cancel_amount: 1000 });
    expect((await row(p.merchantUid)).cancelled_amount).toBe(1000);
  });

  it("refuses to refund a payment that was not paid (declined, pending order) with BAD_USER_INPUT", async () => {
    const declined = await paid(3000, TEST_CARDS.declined);
    expect(declined.status).toBe("FAILED");
    const r1 = await h.gql(REFUND, { input: { merchantUid: declined.merchantUid, reason: "x" } });
    expect(r1.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "merchantUid" });

    const merchantUid = uid("pend");
    await h.client.request(`mutation P($input: PreparePaymentInput!) { preparePayment(input: $input) { merchantUid } }`, {
      input: { amount: 1000, name: "unpaid", merchantUid },
    });
    const r2 = await h.gql(REFUND, { input: { merchantUid, reason: "x" } });
    expect(r2.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "merchantUid" });
  });

  it.each([
    [{ amount: 0 }, "amount"],
    [{ amount: -100 }, "amount"],
    [{ reason: "" }, "reason"],
    [{ reason: "r".repeat(201) }, "reason"],
    [{ merchantUid: "" }, "merchantUid"],
  ])("answers BAD_USER_INPUT for %p", async (patch, field) => {
    const p = await paid(1000);
    const r = await h.gql(REFUND, { input: { merchantUid: p.merchantUid, reason: "x", ...patch } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
    expect((await atIamport(p.impUid!)).cancel_amount).toBe(0);
  });

  it("answers NOT_FOUND for an unknown merchantUid", async () => {
    const r = await h.gql(REFUND, { input: { merchantUid: uid("ghost"), reason: "x" } });
    expect(r.errors?.[0].extensions?.code).toBe("NOT_FOUND");
  });

  it("sends Iamport's checksum: a refund based on a stale balance (refunded in the console meanwhile) is refused, and the view refreshed", async () => {
    const p = await paid(9000);
    // Someone refunds 1000 in Iamport's console: this server does not know yet.
    const token = await h.iamportToken();
    const console = await h.emu.post("/payments/cancel", { imp_uid: p.impUid, amount: 1000, reason: "console" }, { headers: { Authorization: token } });
    expect(console.data.code).toBe(0);

    const stale = await h.gql(REFUND, { input: { merchantUid: p.merchantUid, reason: "full refund" } });
    expect(stale.errors?.[0].extensions?.code).toBe("CONFLICT");
    // Iamport refunded nothing more; the server now knows about the console refund.
    expect((await atIamport(p.impUid!)).cancel_amount).toBe(1000);
    expect(await row(p.merchantUid)).toMatchObject({ status: "PAID", cancelled_amount: 1000 });

    const rest = await refund(p.merchantUid);
    expect(rest).toMatchObject({ status: "CANCELLED", cancelledAmount: 9000 });
  });

  it("concurrent refunds of the whole balance refund it once", async () => {
    const p = await paid(6000);
    const results = await Promise.all([0, 1, 2].map(() => h.gql(REFUND, { input: { merchantUid: p.merchantUid, reason: "race" } })));
    const ok = results.filter((r) => !r.errors);
    expect(ok).toHaveLength(1);
    for (const r of results.filter((x) => x.errors)) expect(["CONFLICT", "BAD_USER_INPUT"]).toContain(r.errors![0].extensions?.code);
    const iamport = await atIamport(p.impUid!);
    expect(iamport).toMatchObject({ status: "cancelled", cancel_amount: 6000 });
    expect(iamport.cancel_history).toHaveLength(1);
  });

  it("answers UPSTREAM_UNAVAILABLE when Iamport fails the refund, and records no refund", async () => {
    const p = await paid(2000);
    await h.emu.post("/__emulator/faults", { route: "POST /payments/cancel", mode: "http500", times: 1 });
    const r = await h.gql(REFUND, { input: { merchantUid: p.merchantUid, reason: "x" } });
    expect(r.errors?.[0].extensions?.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(await row(p.merchantUid)).toMatchObject({ status: "PAID", cancelled_amount: 0 });
    expect((await atIamport(p.impUid!)).cancel_amount).toBe(0);
  });

  it("settles a refund whose answer was lost (timeout) by asking Iamport", async () => {
    const p = await paid(3000);
    await h.emu.post("/__emulator/faults", { route: "POST /payments/cancel", mode: "timeout", times: 1 });
    const r = await refund(p.merchantUid, 1200);
    expect(r).toMatchObject({ status: "PAID", cancelledAmount: 1200 });
    expect((await atIamport(p.impUid!)).cancel_amount).toBe(1200);
  });

  it("a webhook whose answer from Iamport predates a refund does not undo it (the answer is asked again under the lock)", async () => {
    const p = await paid(10_000);
    // A webhook for the payment arrives; Iamport answers the server's look-up (before the refund) but the
    // answer is held on its way back, so the handler is slow to apply it...
    await h.emu.post("/__emulator/faults", { route: "GET /payments/{imp_uid}", mode: "hold", times: 1 });
    const webhook = h.http.post("/iamport-webhook", { imp_uid: p.impUid, merchant_uid: p.merchantUid, status: "paid" });
    const held = await heldCall();
    // ...while the merchant refunds part of it.
    expect((await refund(p.merchantUid, 3000)).cancelledAmount).toBe(3000);
    // The slow handler now gets the answer it asked for before the refund.
    expect((await h.emu.post("/__emulator/faults/release", { id: held })).data).toEqual({ released: 1 });
    const r = await webhook;
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "ok", outcome: "PAID" });
    expect(await row(p.merchantUid)).toMatchObject({ status: "PAID", cancelled_amount: 3000 });
    expect((await h.client.request<{ payment: Pay }>(`query P($m: String!) { payment(merchantUid: $m) { ${PAYMENT_FIELDS} } }`, { m: p.merchantUid })).payment).toMatchObject({
      status: "PAID",
      cancelledAmount: 3000,
    });
    // And the next refund's checksum is right.
    expect((await refund(p.merchantUid, 2000)).cancelledAmount).toBe(5000);
  });

  it("a forged payment can be refunded in full and stays FORGERY_SUSPECTED", async () => {
    const merchantUid = uid("forged");
    await h.client.request(`mutation P($input: PreparePaymentInput!) { preparePayment(input: $input) { merchantUid } }`, {
      input: { amount: 50_000, name: "forged", merchantUid },
    });
    const { data } = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount: 500, ignore_prepare: true });
    expect((await row(merchantUid)).status).toBe("FORGERY_SUSPECTED");
    const over = await h.gql(REFUND, { input: { merchantUid, amount: 501, reason: "x" } });
    expect(over.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "amount" });
    const r = await refund(merchantUid, undefined, "forgery");
    expect(r).toMatchObject({ status: "FORGERY_SUSPECTED", paidAmount: 500, cancelledAmount: 500 });
    expect(r.failReason).toMatch(/500/);
    expect(await atIamport(data.imp_uid)).toMatchObject({ status: "cancelled", cancel_amount: 500 });
  });
});
