import { Harness, PAYMENT_FIELDS, startHarness, uid } from "../support/harness";

/**
 * Browser checkout (IMP.request_pay) around the server: preparePayment, the
 * emulator's payment window, verifyPayment, forgery, virtual accounts and the
 * browser returns (POST /payments/complete, GET /payments/complete/mobile).
 */

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const PREPARE = `mutation Prepare($input: PreparePaymentInput!) { preparePayment(input: $input) { ${PAYMENT_FIELDS} } }`;
const VERIFY = `mutation Verify($input: VerifyPaymentInput!) { verifyPayment(input: $input) { outcome message payment { ${PAYMENT_FIELDS} } } }`;
const PAYMENT = `query P($merchantUid: String, $impUid: String) { payment(merchantUid: $merchantUid, impUid: $impUid) { ${PAYMENT_FIELDS} } }`;

type Pay = Record<string, unknown> & { merchantUid: string; status: string; impUid: string | null; amount: number; paidAmount: number | null };
type Verification = { outcome: string; message: string; payment: Pay };

async function prepare(amount: number, merchantUid = uid("ord")): Promise<Pay> {
  const r = await h.client.request<{ preparePayment: Pay }>(PREPARE, { input: { amount, name: "Order", merchantUid } });
  return r.preparePayment;
}

/** The customer pays in the browser window; resolves after the webhook (if any) was handled. */
async function checkout(merchantUid: string, amount: number, extra: Record<string, unknown> = {}) {
  const r = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount, ...extra });
  expect(r.status).toBe(200);
  return r.data as { imp_uid: string; status: string; fail_reason: string | null; webhooks: { delivered: number; failed: number; dropped: number } };
}

async function dropNextWebhook() {
  expect((await h.emu.post("/__emulator/faults", { mode: "drop_webhook", times: 1 })).status).toBe(201);
}

async function verify(impUid: string, merchantUid?: string): Promise<Verification> {
  return (await h.client.request<{ verifyPayment: Verification }>(VERIFY, { input: { impUid, merchantUid } })).verifyPayment;
}

async function row(merchantUid: string) {
  const rows = await h.sql<{ status: string; imp_uid: string | null; amount: number; paid_amount: number | null; kind: string; fail_reason: string | null }>(
    `select status, imp_uid, amount, paid_amount, kind, fail_reason from payments where merchant_uid = ?`,
    [merchantUid],
  );
  return rows[0];
}

async function events(impUid: string) {
  return h.sql<{ source: string; outcome: string | null; processed_at: unknown; merchant_uid: string | null }>(
    `select source, outcome, processed_at, merchant_uid from webhook_events where imp_uid = ? order by id`,
    [impUid],
  );
}

describe("preparePayment", () => {
  it("records the order as PENDING and registers its amount with Iamport's /payments/prepare", async () => {
    const merchantUid = uid("ord");
    const p = await prepare(12_000, merchantUid);
    expect(p).toMatchObject({ merchantUid, amount: 12_000, status: "PENDING", impUid: null, paidAmount: null, cancelledAmount: 0, currency: "KRW" });
    expect(await row(merchantUid)).toMatchObject({ status: "PENDING", amount: 12_000, kind: "CHECKOUT" });
    const token = await h.iamportToken();
    const prepared = await h.emu.get(`/payments/prepare/${merchantUid}`, { headers: { Authorization: token } });
    expect(prepared.status).toBe(200);
    expect(prepared.data.response).toMatchObject({ merchant_uid: merchantUid, amount: 12_000 });
  });

  it("generates the merchantUid when omitted, and keeps the customerUid", async () => {
    const customerUid = uid("cust");
    const r = await h.client.request<{ preparePayment: Pay }>(PREPARE, { input: { amount: 500, name: "Gen", customerUid } });
    expect(r.preparePayment.merchantUid).toMatch(/^ord_[a-z0-9]+_[a-z0-9]{10}$/);
    expect(r.preparePayment.merchantUid.length).toBeLessThanOrEqual(40);
    expect(r.preparePayment.customerUid).toBe(customerUid);
    const token = await h.iamportToken();
    expect((await h.emu.get(`/payments/prepare/${r.preparePayment.merchantUid}`, { headers: { Authorization: token } })).data.response.amount).toBe(500);
  });

  it("refuses a duplicate merchantUid with CONFLICT and keeps the first amount", async () => {
    const merchantUid = uid("dup");
    await prepare(1000, merchantUid);
    const r = await h.gql(PREPARE, { input: { amount: 2000, name: "again", merchantUid } });
    expect(r.errors?.[0].extensions?.code).toBe("CONFLICT");
    expect((await row(merchantUid)).amount).toBe(1000);
    const token = await h.iamportToken();
    expect((await h.emu.get(`/payments/prepare/${merchantUid}`, { headers: { Authorization: token } })).data.response.amount).toBe(1000);
  });

  it("answers CONFLICT and keeps no order when Iamport already has that merchant_uid prepared", async () => {
    const merchantUid = uid("taken");
    const token = await h.iamportToken();
    await h.emu.post("/payments/prepare", { merchant_uid: merchantUid, amount: 10 }, { headers: { Authorization: token } });
    const r = await h.gql(PREPARE, { input: { amount: 2000, name: "x", merchantUid } });
    expect(r.errors?.[0].extensions?.code).toBe("CONFLICT");
    expect(await row(merchantUid)).toBeUndefined();
  });

  it("answers UPSTREAM_UNAVAILABLE and keeps no order when Iamport fails; the same merchantUid works afterwards", async () => {
    const merchantUid = uid("down");
    await h.emu.post("/__emulator/faults", { route: "POST /payments/prepare", mode: "http500", times: 1 });
    const r = await h.gql(PREPARE, { input: { amount: 2000, name: "x", merchantUid } });
    expect(r.errors?.[0].extensions?.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(await row(merchantUid)).toBeUndefined();
    expect((await prepare(2000, merchantUid)).status).toBe("PENDING");
  });

  it.each([
    [{ amount: 0 }, "amount"],
    [{ amount: -1 }, "amount"],
    [{ amount: 100_000_001 }, "amount"],
    [{ name: "" }, "name"],
    [{ name: "x".repeat(201) }, "name"],
    [{ merchantUid: "has space" }, "merchantUid"],
    // Iamport keeps at most 40 characters of a merchant_uid.
    [{ merchantUid: "m".repeat(41) }, "merchantUid"],
    [{ customerUid: "a/b" }, "customerUid"],
  ])("answers BAD_USER_INPUT naming the field for %p", async (patch, field) => {
    const merchantUid = uid("bad");
    const r = await h.gql(PREPARE, { input: { amount: 1000, name: "ok", merchantUid, ...patch } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
    expect(await row(merchantUid)).toBeUndefined();
  });
});

describe("verifyPayment", () => {
  it("marks the order PAID after a checkout, from what the server fetched (no webhook needed)", async () => {
    const order = await prepare(15_000);
    await dropNextWebhook();
    const { imp_uid, status } = await checkout(order.merchantUid, 15_000);
    expect(status).toBe("paid");
    expect((await row(order.merchantUid)).status).toBe("PENDING");

    const v = await verify(imp_uid);
    expect(v.outcome).toBe("PAID");
    expect(v.payment).toMatchObject({ merchantUid: order.merchantUid, impUid: imp_uid, status: "PAID", amount: 15_000, paidAmount: 15_000 });
    expect(v.payment.paidAt).toEqual(expect.any(String));
    expect(v.payment.receiptUrl).toEqual(expect.any(String));
    // Verifying again changes nothing.
    const again = await verify(imp_uid, order.merchantUid);
    expect(again.outcome).toBe("PAID");
    expect(again.payment).toMatchObject({ status: "PAID", impUid: imp_uid, paidAmount: 15_000, paidAt: v.payment.paidAt });
    expect(await row(order.merchantUid)).toMatchObject({ status: "PAID", imp_uid, paid_amount: 15_000 });
  });

  it("the checkout webhook alone marks the order PAID and is recorded with its outcome", async () => {
    const order = await prepare(3000);
    const { imp_uid, webhooks } = await checkout(order.merchantUid, 3000);
    expect(webhooks.delivered).toBe(1);
    expect(await row(order.merchantUid)).toMatchObject({ status: "PAID", imp_uid });
    const ev = await events(imp_uid);
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ source: "iamport-webhook", outcome: "PAID", merchant_uid: order.merchantUid });
    expect(ev[0].processed_at).not.toBeNull();
  });

  it("FORGERY: a payment for less than the order (prepare bypassed) is FORGERY_SUSPECTED, never PAID, even when verified again", async () => {
    const order = await prepare(50_000);
    const { imp_uid, status } = await checkout(order.merchantUid, 100, { ignore_prepare: true });
    expect(status).toBe("paid"); // Iamport took the money: the amount is what is wrong.
    // The webhook already ran the verification.
    expect(await row(order.merchantUid)).toMatchObject({ status: "FORGERY_SUSPECTED", imp_uid, paid_amount: 100 });
    expect((await events(imp_uid))[0].outcome).toBe("FORGERY_SUSPECTED");

    const v = await verify(imp_uid);
    expect(v.outcome).toBe("FORGERY");
    expect(v.message).toEqual(expect.any(String));
    expect(v.payment.status).toBe("FORGERY_SUSPECTED");
    // The reason names the amounts, and a later verification does not overwrite it.
    expect(v.payment.failReason).toMatch(/100\b.*50000|50000.*\b100\b/);

    const second = await verify(imp_uid, order.merchantUid);
    expect(second.outcome).toBe("FORGERY");
    const redelivered = await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid, times: 2 });
    expect(redelivered.data.webhooks.delivered).toBe(2);
    expect(await row(order.merchantUid)).toMatchObject({ status: "FORGERY_SUSPECTED", fail_reason: v.payment.failReason });
    const { payment } = await h.client.request<{ payment: Pay }>(PAYMENT, { merchantUid: order.merchantUid });
    expect(payment.status).toBe("FORGERY_SUSPECTED");
    expect(h.logs.some((l) => l.includes("forgery suspected") && l.includes(order.merchantUid))).toBe(true);
  });

  it("FORGERY: an amount above the order is not PAID either", async () => {
    const order = await prepare(1000);
    const { imp_uid } = await checkout(order.merchantUid, 1001, { ignore_prepare: true });
    const v = await verify(imp_uid);
    expect(v.outcome).toBe("FORGERY");
    expect(v.payment.status).toBe("FORGERY_SUSPECTED");
  });

  it("FORGERY: presenting another order's payment as this order's flags it and changes neither order", async () => {
    const victim = await prepare(90_000);
    const cheap = await prepare(1000);
    await dropNextWebhook();
    const { imp_uid } = await checkout(cheap.merchantUid, 1000);

    const v = await verify(imp_uid, victim.merchantUid);
    expect(v.outcome).toBe("FORGERY");
    expect(v.payment.merchantUid).toBe(victim.merchantUid);
    expect(v.payment.status).not.toBe("PAID");
    // The victim order still waits for its own payment, and the cheap one was not touched by the forged claim.
    expect(await row(victim.merchantUid)).toMatchObject({ status: "PENDING", imp_uid: null, paid_amount: null });
    expect(await row(cheap.merchantUid)).toMatchObject({ status: "PENDING", imp_uid: null });

    // The victim can still pay for real.
    const real = await checkout(victim.merchantUid, 90_000);
    expect(await row(victim.merchantUid)).toMatchObject({ status: "PAID", imp_uid: real.imp_uid });
    // And the cheap order is verified on its own merits.
    expect((await verify(imp_uid)).outcome).toBe("PAID");
  });

  it("a blocked window (amount differs from prepare) is FAILED; a later stale notice about it does not undo the real payment", async () => {
    const order = await prepare(7000);
    const blocked = await checkout(order.merchantUid, 700);
    expect(blocked.status).toBe("failed");
    expect(blocked.webhooks.delivered).toBe(0); // Iamport notifies no failed window.
    const failed = await verify(blocked.imp_uid);
    expect(failed.outcome).toBe("FAILED");
    expect(failed.payment.status).toBe("FAILED");
    expect(failed.payment.failReason).toEqual(expect.any(String));

    const paid = await checkout(order.merchantUid, 7000);
    expect(await row(order.merchantUid)).toMatchObject({ status: "PAID", imp_uid: paid.imp_uid, paid_amount: 7000 });

    // The failed attempt's webhook arrives late, or someone verifies it again.
    await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: blocked.imp_uid });
    const stale = await verify(blocked.imp_uid);
    expect(stale.outcome).toBe("FAILED");
    expect(stale.payment).toMatchObject({ status: "PAID", impUid: paid.imp_uid });
    expect(await row(order.merchantUid)).toMatchObject({ status: "PAID", imp_uid: paid.imp_uid, paid_amount: 7000 });
    const ev = await events(blocked.imp_uid);
    expect(ev).toHaveLength(1);
    expect(ev[0].outcome).toMatch(/^FAILED: .*stays PAID/);
  });

  it("answers NOT_FOUND for an impUid Iamport does not know, and for a payment of an order this server never recorded", async () => {
    const r = await h.gql(VERIFY, { input: { impUid: "imp_000000000000" } });
    expect(r.errors?.[0].extensions?.code).toBe("NOT_FOUND");

    const stranger = uid("stranger");
    await dropNextWebhook();
    const { imp_uid } = await checkout(stranger, 1000);
    const r2 = await h.gql(VERIFY, { input: { impUid: imp_uid } });
    expect(r2.errors?.[0].extensions?.code).toBe("NOT_FOUND");
    expect(await row(stranger)).toBeUndefined();
  });

  it.each([
    [{ impUid: "" }, "impUid"],
    [{ impUid: "imp 1" }, "impUid"],
    [{ impUid: "imp_1", merchantUid: "a b" }, "merchantUid"],
  ])("answers BAD_USER_INPUT naming the field for %p", async (input, field) => {
    const r = await h.gql(VERIFY, { input });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
  });

  it("answers UPSTREAM_UNAVAILABLE when Iamport cannot be asked, and changes nothing", async () => {
    const order = await prepare(2000);
    await dropNextWebhook();
    const { imp_uid } = await checkout(order.merchantUid, 2000);
    await h.emu.post("/__emulator/faults", { route: "GET /payments/{imp_uid}", mode: "http500", times: 1 });
    const r = await h.gql(VERIFY, { input: { impUid: imp_uid } });
    expect(r.errors?.[0].extensions?.code).toBe("UPSTREAM_UNAVAILABLE");
    expect((await row(order.merchantUid)).status).toBe("PENDING");
  });
});

describe("virtual accounts", () => {
  it("READY (VBANK_ISSUED) on the issue webhook, then PAID on the deposit webhook", async () => {
    const order = await prepare(33_000);
    const issued = await checkout(order.merchantUid, 33_000, { pay_method: "vbank" });
    expect(issued.status).toBe("ready");
    expect(issued.webhooks.delivered).toBe(1);
    expect(await row(order.merchantUid)).toMatchObject({ status: "READY", imp_uid: issued.imp_uid, paid_amount: null });
    const v = await verify(issued.imp_uid);
    expect(v.outcome).toBe("VBANK_ISSUED");
    expect(v.payment).toMatchObject({ status: "READY", paidAt: null });

    const deposit = await h.emu.post("/__emulator/vbank/deposit", { imp_uid: issued.imp_uid });
    expect(deposit.status).toBe(200);
    expect(deposit.data.webhooks.delivered).toBe(1);
    expect(await row(order.merchantUid)).toMatchObject({ status: "PAID", imp_uid: issued.imp_uid, paid_amount: 33_000 });
    expect((await events(issued.imp_uid)).map((e) => e.outcome)).toEqual(["READY", "PAID"]);
    expect((await verify(issued.imp_uid)).outcome).toBe("PAID");
  });

  it("an account the merchant issued through Iamport's POST /vbanks goes the same way: READY, then PAID on the deposit webhook", async () => {
    const order = await prepare(27_000);
    const token = await h.iamportToken();
    const now = (await h.emu.get("/__emulator/clock")).data.now as number;
    // Its issue notice is dropped, so the verification below is the only thing that records it.
    await dropNextWebhook();
    const issued = await h.emu.post(
      "/vbanks",
      { channel_key: "channel-key-test", merchant_uid: order.merchantUid, amount: 27_000, vbank_code: "004", vbank_due: now + 86_400, vbank_holder: "Shop" },
      { headers: { Authorization: token } },
    );
    expect(issued.data).toMatchObject({ code: 0, response: { status: "ready", pay_method: "vbank" } });
    const impUid = issued.data.response.imp_uid as string;
    const v = await verify(impUid);
    expect(v).toMatchObject({ outcome: "VBANK_ISSUED", payment: { status: "READY" } });

    const deposit = await h.emu.post("/__emulator/vbank/deposit", { imp_uid: impUid });
    expect(deposit.data.webhooks.delivered).toBe(1);
    expect(await row(order.merchantUid)).toMatchObject({ status: "PAID", imp_uid: impUid, paid_amount: 27_000 });
  });

  it("a virtual account issued for less than the order is FORGERY_SUSPECTED and stays so after the deposit", async () => {
    const order = await prepare(40_000);
    const issued = await checkout(order.merchantUid, 4000, { pay_method: "vbank", ignore_prepare: true });
    expect((await row(order.merchantUid)).status).toBe("FORGERY_SUSPECTED");
    await h.emu.post("/__emulator/vbank/deposit", { imp_uid: issued.imp_uid });
    expect((await row(order.merchantUid)).status).toBe("FORGERY_SUSPECTED");
  });
});

describe("POST /payments/complete (desktop callback)", () => {
  it("verifies with Iamport and answers success with the payment", async () => {
    const order = await prepare(4500);
    await dropNextWebhook();
    const { imp_uid } = await checkout(order.merchantUid, 4500);
    const r = await h.http.post("/payments/complete", { imp_uid, merchant_uid: order.merchantUid });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "success", outcome: "PAID", payment: { merchantUid: order.merchantUid, impUid: imp_uid, status: "PAID", paidAmount: 4500 } });
    expect((await events(imp_uid))[0]).toMatchObject({ source: "complete", outcome: "PAID" });
  });

  it("trims the ids it is sent: the trimmed ones are verified and recorded", async () => {
    const order = await prepare(4700);
    await dropNextWebhook();
    const { imp_uid } = await checkout(order.merchantUid, 4700);
    const r = await h.http.post("/payments/complete", { imp_uid: ` ${imp_uid} `, merchant_uid: ` ${order.merchantUid}\t` });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "success", outcome: "PAID" });
    expect(await events(imp_uid)).toEqual([expect.objectContaining({ source: "complete", outcome: "PAID", merchant_uid: order.merchantUid })]);
  });

  it("accepts a form body", async () => {
    const order = await prepare(4600);
    const { imp_uid } = await checkout(order.merchantUid, 4600);
    const r = await h.http.post("/payments/complete", new URLSearchParams({ imp_uid, merchant_uid: order.merchantUid }).toString(), {
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(r.status).toBe(200);
    expect(r.data.status).toBe("success");
  });

  it("answers failed/FORGERY for a forged amount and for another order's payment", async () => {
    const order = await prepare(9900);
    const { imp_uid } = await checkout(order.merchantUid, 99, { ignore_prepare: true });
    const r = await h.http.post("/payments/complete", { imp_uid, merchant_uid: order.merchantUid });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "failed", outcome: "FORGERY", payment: { status: "FORGERY_SUSPECTED" } });

    const victim = await prepare(9900);
    const other = await prepare(100);
    const paid = await checkout(other.merchantUid, 100);
    const claim = await h.http.post("/payments/complete", { imp_uid: paid.imp_uid, merchant_uid: victim.merchantUid });
    expect(claim.status).toBe(200);
    expect(claim.data).toMatchObject({ status: "failed", outcome: "FORGERY" });
    expect((await row(victim.merchantUid)).status).toBe("PENDING");
    expect((await row(other.merchantUid)).status).toBe("PAID");
    const claimEvent = (await events(paid.imp_uid)).find((e) => e.source === "complete");
    expect(claimEvent?.outcome).toMatch(/^FORGERY_SUSPECTED: /);
  });

  it("answers 404 for an unknown payment and 400 for missing fields", async () => {
    const unknown = await h.http.post("/payments/complete", { imp_uid: "imp_000000000001", merchant_uid: uid("x") });
    expect(unknown.status).toBe(404);
    expect(unknown.data).toMatchObject({ status: "failed", code: "NOT_FOUND" });
    const noMerchant = await h.http.post("/payments/complete", { imp_uid: "imp_1" });
    expect(noMerchant.status).toBe(400);
    expect(noMerchant.data).toMatchObject({ code: "BAD_USER_INPUT", field: "merchant_uid" });
    const noImp = await h.http.post("/payments/complete", { merchant_uid: "m_1" });
    expect(noImp.status).toBe(400);
    expect(noImp.data).toMatchObject({ code: "BAD_USER_INPUT", field: "imp_uid" });
  });
});

describe("GET /payments/complete/mobile (m_redirect_url), answering JSON", () => {
  it("imp_success=true: verifies with Iamport and answers the real status", async () => {
    const order = await prepare(6000);
    await dropNextWebhook();
    const { imp_uid } = await checkout(order.merchantUid, 6000);
    const r = await h.http.get("/payments/complete/mobile", { params: { imp_uid, merchant_uid: order.merchantUid, imp_success: "true" } });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ merchant_uid: order.merchantUid, status: "PAID", outcome: "PAID" });
    expect(await row(order.merchantUid)).toMatchObject({ status: "PAID", imp_uid });
    expect((await events(imp_uid))[0]).toMatchObject({ source: "mobile-redirect", outcome: "PAID" });
  });

  it("imp_success=true is not trusted: a blocked payment is answered FAILED", async () => {
    const order = await prepare(6000);
    const blocked = await checkout(order.merchantUid, 60);
    const r = await h.http.get("/payments/complete/mobile", { params: { imp_uid: blocked.imp_uid, merchant_uid: order.merchantUid, imp_success: "true" } });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ merchant_uid: order.merchantUid, status: "FAILED" });
    expect((await row(order.merchantUid)).status).toBe("FAILED");
  });

  it("imp_success=true with a forged amount answers FORGERY_SUSPECTED", async () => {
    const order = await prepare(6000);
    await dropNextWebhook();
    const { imp_uid } = await checkout(order.merchantUid, 600, { ignore_prepare: true });
    const r = await h.http.get("/payments/complete/mobile", { params: { imp_uid, merchant_uid: order.merchantUid, imp_success: "true" } });
    expect(r.data).toMatchObject({ merchant_uid: order.merchantUid, status: "FORGERY_SUSPECTED", outcome: "FORGERY" });
  });

  it("imp_success=false with error_msg and no imp_uid: answers FAILED with the message and records the return", async () => {
    const order = await prepare(6000);
    const r = await h.http.get("/payments/complete/mobile", {
      params: { merchant_uid: order.merchantUid, imp_success: "false", error_code: "F400", error_msg: "사용자가 결제를 취소하였습니다" },
    });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ merchant_uid: order.merchantUid, status: "FAILED", message: "사용자가 결제를 취소하였습니다" });
    // The order itself is untouched: the customer may try again.
    expect((await row(order.merchantUid)).status).toBe("PENDING");
    const ev = await h.sql<{ source: string; outcome: string; imp_uid: string | null }>(
      `select source, outcome, imp_uid from webhook_events where merchant_uid = ? order by id`,
      [order.merchantUid],
    );
    expect(ev).toEqual([{ source: "mobile-redirect", outcome: "no imp_uid", imp_uid: null }]);
  });

  it("an unknown imp_uid answers UNKNOWN, and a bad one 400", async () => {
    const r = await h.http.get("/payments/complete/mobile", { params: { imp_uid: "imp_000000000002", merchant_uid: "m_x", imp_success: "true" } });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "UNKNOWN" });
    const bad = await h.http.get("/payments/complete/mobile", { params: { imp_uid: "imp 1", imp_success: "true" } });
    expect(bad.status).toBe(400);
  });
});
