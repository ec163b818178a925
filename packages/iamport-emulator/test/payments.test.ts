import { DECLINE_REASONS } from "../src/cards";
import { TEST_CARDS } from "../src";
import { CARD, issueKey, startTestEmulator, uid, WebhookReceiver, webhooksSentFor, type Envelope, type TestEmulator } from "./helpers";

type Payment = Record<string, unknown> & {
  imp_uid: string;
  merchant_uid: string;
  status: string;
  amount: number;
  cancel_amount: number;
  fail_reason: string | null;
  cancel_history: Array<Record<string, unknown>>;
};

const REQUIRED_PAYMENT_FIELDS = ["imp_uid", "merchant_uid", "amount", "cancel_amount", "currency", "status", "sandbox"];
const TIME_FIELDS = ["started_at", "paid_at", "failed_at", "cancelled_at", "vbank_date", "vbank_issued_at"];

describe("emulator: charges, look-ups and cancels", () => {
  let t: TestEmulator;
  let hooks: WebhookReceiver;
  beforeAll(async () => {
    hooks = await new WebhookReceiver().start();
    t = await startTestEmulator({ webhookUrl: hooks.url });
  });
  afterAll(async () => {
    await t.close();
    await hooks.close();
  });

  const again = (body: Record<string, unknown>) => t.api.post<Envelope<Payment>>("/subscribe/payments/again", body);
  const charge = async (customerUid: string, amount = 9900, extra: Record<string, unknown> = {}) =>
    (await again({ customer_uid: customerUid, merchant_uid: uid("order"), amount, name: "월간 구독", ...extra })).data;

  it("charges a billing key: paid, channel api, pay_method card, usage payment, masked card, receipt", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const mu = uid("order");
    const r = await again({
      customer_uid: cu,
      merchant_uid: mu,
      amount: 9900,
      name: "월간 구독",
      buyer_name: "홍길동",
      buyer_email: "hong@example.com",
      custom_data: { plan: "pro" },
      card_quota: 0,
    });
    expect(r.status).toBe(200);
    expect(r.data.code).toBe(0);
    const p = r.data.response;
    for (const f of REQUIRED_PAYMENT_FIELDS) expect(p).toHaveProperty(f);
    for (const f of TIME_FIELDS) expect(Number.isInteger(p[f])).toBe(true);
    expect(p).toMatchObject({
      merchant_uid: mu,
      amount: 9900,
      cancel_amount: 0,
      currency: "KRW",
      status: "paid",
      channel: "api",
      pay_method: "card",
      pg_provider: "nice",
      customer_uid: cu,
      customer_uid_usage: "payment",
      buyer_name: "홍길동",
      custom_data: '{"plan":"pro"}',
      card_number: "424242******4242",
      failed_at: 0,
      cancelled_at: 0,
      fail_reason: null,
      cancel_history: [],
    });
    expect(p.imp_uid).toMatch(/^imps_[0-9a-z]{12}$/);
    expect(p.paid_at).toBeGreaterThan(0);
    expect(typeof p.receipt_url).toBe("string");
    expect(typeof p.apply_num).toBe("string");
    // An approved payment is notified.
    const hook = await hooks.waitUntil((h) => h.body.imp_uid === p.imp_uid);
    expect(hook.body).toEqual({ imp_uid: p.imp_uid, merchant_uid: mu, status: "paid" });
    expect(hook.contentType).toMatch(/^application\/json/);

    const byImp = await t.api.get<Envelope<Payment>>(`/payments/${p.imp_uid}`);
    expect(byImp.data.response).toEqual(p);
    const byMerchant = await t.api.get<Envelope<Payment>>(`/payments/find/${mu}`);
    expect(byMerchant.data.response.imp_uid).toBe(p.imp_uid);
    const byStatus = await t.api.get<Envelope<Payment>>(`/payments/find/${mu}/paid`);
    expect(byStatus.data.response.imp_uid).toBe(p.imp_uid);
    expect((await t.api.get(`/payments/find/${mu}/failed`)).status).toBe(404);
    expect((await t.api.get<Envelope>(`/payments/find/${mu}/bogus`)).status).toBe(400);
  });

  it("refuses to charge an already-paid merchant_uid again", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const mu = uid("order");
    expect((await again({ customer_uid: cu, merchant_uid: mu, amount: 1000, name: "x" })).data.response.status).toBe("paid");
    const dup = await again({ customer_uid: cu, merchant_uid: mu, amount: 1000, name: "x" });
    expect(dup.status).toBe(200);
    expect(dup.data.code).not.toBe(0);
    expect(dup.data.response).toBeNull();
    expect(dup.data.message).toContain(mu);
  });

  it("declines the limit card with code 0, status failed and a fail_reason, and sends no webhook", async () => {
    const cu = uid("cust");
    await issueKey(t, cu, { card_number: TEST_CARDS.DECLINED_LIMIT });
    const res = await charge(cu);
    expect(res.code).toBe(0);
    expect(res.response.status).toBe("failed");
    expect(res.response.fail_reason).toContain("한도초과");
    expect(res.response.failed_at).toBeGreaterThan(0);
    expect(res.response.paid_at).toBe(0);
    expect(await webhooksSentFor(t, res.response.imp_uid)).toEqual([]);
  });

  it("declines the insufficient-balance card", async () => {
    const cu = uid("cust");
    await issueKey(t, cu, { card_number: TEST_CARDS.DECLINED_INSUFFICIENT_BALANCE });
    const res = await charge(cu);
    expect(res.response.status).toBe("failed");
    expect(res.response.fail_reason).toContain("잔액부족");
  });

  it("approves the first charge of the 0341 card and declines every later one", async () => {
    const cu = uid("cust");
    await issueKey(t, cu, { card_number: TEST_CARDS.DECLINES_AFTER_FIRST_CHARGE });
    expect((await charge(cu)).response.status).toBe("paid");
    expect((await charge(cu)).response.status).toBe("failed");
    expect((await charge(cu)).response.status).toBe("failed");
  });

  it("approves the first charge of the 3220 card and declines every later one softly (잔액부족)", async () => {
    const cu = uid("cust");
    await issueKey(t, cu, { card_number: TEST_CARDS.SOFT_DECLINES_AFTER_FIRST_CHARGE });
    expect((await charge(cu)).response.status).toBe("paid");
    for (let i = 0; i < 4; i++) {
      const r = (await charge(cu)).response;
      expect(r).toMatchObject({ status: "failed", fail_reason: DECLINE_REASONS.balance });
    }
  });

  it("approves the first charge of the 3238 card, declines the next two softly, then approves again", async () => {
    const cu = uid("cust");
    await issueKey(t, cu, { card_number: TEST_CARDS.RECOVERS_AFTER_TWO_DECLINES });
    const outcomes: [string, string | null][] = [];
    for (let i = 0; i < 5; i++) {
      const r = (await charge(cu)).response;
      outcomes.push([r.status, r.fail_reason]);
    }
    expect(outcomes).toEqual([
      ["paid", null],
      ["failed", DECLINE_REASONS.balance],
      ["failed", DECLINE_REASONS.balance],
      ["paid", null],
      ["paid", null],
    ]);
  });

  it("lets a failed merchant_uid be charged again, and find returns the latest attempt", async () => {
    const cu = uid("cust");
    await issueKey(t, cu, { card_number: TEST_CARDS.DECLINED_LIMIT });
    const mu = uid("order");
    const failed = (await again({ customer_uid: cu, merchant_uid: mu, amount: 5000, name: "x" })).data.response;
    expect(failed.status).toBe("failed");
    await issueKey(t, cu); // the customer fixes the card
    const retried = (await again({ customer_uid: cu, merchant_uid: mu, amount: 5000, name: "x" })).data.response;
    expect(retried.status).toBe("paid");
    expect(retried.imp_uid).not.toBe(failed.imp_uid);
    expect((await t.api.get<Envelope<Payment>>(`/payments/find/${mu}`)).data.response.imp_uid).toBe(retried.imp_uid);
    expect((await t.api.get<Envelope<Payment>>(`/payments/find/${mu}/failed`)).data.response.imp_uid).toBe(failed.imp_uid);
  });

  it("refuses a charge for an unknown customer with a non-zero code", async () => {
    const r = await again({ customer_uid: uid("ghost"), merchant_uid: uid("order"), amount: 1000, name: "x" });
    expect(r.status).toBe(200);
    expect(r.data.code).not.toBe(0);
    expect(r.data.message).toBe("등록된 고객정보가 없습니다.");
  });

  it("requires name, and takes a form body with numeric strings", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const noName = await again({ customer_uid: cu, merchant_uid: uid("order"), amount: 1000 });
    expect(noName.status).toBe(400);
    expect(noName.data.message).toContain("name");
    const form = await t.api.post<Envelope<Payment>>(
      "/subscribe/payments/again",
      new URLSearchParams({ customer_uid: cu, merchant_uid: uid("order"), amount: "1200", name: "form" }).toString(),
      { headers: { "Content-Type": "application/x-www-form-urlencoded" } },
    );
    expect(form.data.response).toMatchObject({ amount: 1200, status: "paid" });
  });

  it("uses notice_url instead of the default webhook URL", async () => {
    const other = await new WebhookReceiver().start();
    try {
      const cu = uid("cust");
      await issueKey(t, cu);
      const p = (await charge(cu, 1000, { notice_url: other.url })).response;
      const [hook] = await other.waitFor(1);
      expect(hook.body).toMatchObject({ imp_uid: p.imp_uid, status: "paid" });
      // Sent once, and only to notice_url.
      expect(await webhooksSentFor(t, p.imp_uid)).toEqual([{ url: other.url, status: "paid" }]);
    } finally {
      await other.close();
    }
  });

  describe("onetime", () => {
    const onetime = (body: Record<string, unknown>) => t.api.post<Envelope<Payment>>("/subscribe/payments/onetime", body);

    it("charges card data once without storing a key", async () => {
      const r = await onetime({ ...CARD, merchant_uid: uid("order"), amount: 3000, name: "once" });
      expect(r.data.code).toBe(0);
      expect(r.data.response).toMatchObject({ status: "paid", channel: "api", customer_uid: null, customer_uid_usage: null });
    });

    it("with customer_uid also stores the key (usage issue) and buyer_* become customer_*", async () => {
      const cu = uid("cust");
      const r = await onetime({ ...CARD, customer_uid: cu, merchant_uid: uid("order"), amount: 3000, buyer_name: "김철수" });
      expect(r.data.response).toMatchObject({ status: "paid", customer_uid: cu, customer_uid_usage: "issue" });
      const c = await t.api.get<Envelope<Record<string, unknown>>>(`/subscribe/customers/${cu}`);
      expect(c.data.response).toMatchObject({ customer_uid: cu, customer_name: "김철수" });
      expect((await charge(cu)).response.status).toBe("paid");
    });

    it("declines test cards as data and refuses bad cards with a non-zero code", async () => {
      const declined = await onetime({ ...CARD, card_number: TEST_CARDS.DECLINED_INSUFFICIENT_BALANCE, merchant_uid: uid("o"), amount: 1000 });
      expect(declined.data.code).toBe(0);
      expect(declined.data.response.status).toBe("failed");
      const refusedKey = await onetime({ ...CARD, card_number: TEST_CARDS.BILLING_KEY_REFUSED, merchant_uid: uid("o"), amount: 1000 });
      expect(refusedKey.data.code).not.toBe(0);
      const luhn = await onetime({ ...CARD, card_number: "1234-5678-1234-5678", merchant_uid: uid("o"), amount: 1000 });
      expect(luhn.data.code).not.toBe(0);
      expect(luhn.data.response).toBeNull();
    });

    it("counts charges of the 0341 card even without a billing key", async () => {
      const card = { ...CARD, card_number: "4000000000000341" };
      // Another file's tests never use this card on this emulator; this is its first charge here.
      const first = await onetime({ ...card, merchant_uid: uid("o"), amount: 1000 });
      const second = await onetime({ ...card, merchant_uid: uid("o"), amount: 1000 });
      expect(first.data.response.status).toBe("paid");
      expect(second.data.response.status).toBe("failed");
    });
  });

  describe("cancel", () => {
    const cancel = (body: Record<string, unknown>) => t.api.post<Envelope<Payment>>("/payments/cancel", body);
    let cu: string;
    beforeAll(async () => {
      cu = uid("cust");
      await issueKey(t, cu);
    });

    it("cancels partially (still paid, bigger cancel_amount, history, cancelled_at of that cancel) then fully (cancelled)", async () => {
      const p = (await charge(cu, 10000)).response;
      const part = await cancel({ imp_uid: p.imp_uid, amount: 3000, checksum: 10000, reason: "부분 환불" });
      expect(part.data.code).toBe(0);
      expect(part.data.response).toMatchObject({ status: "paid", cancel_amount: 3000, cancel_reason: "부분 환불" });
      // As Iamport does: cancelled_at is the time of the latest cancellation, partial ones included.
      expect(part.data.response.cancelled_at).toBeGreaterThan(0);
      expect(part.data.response.cancelled_at).toBe(part.data.response.cancel_history[0].cancelled_at);
      expect(part.data.response.cancel_history).toHaveLength(1);
      expect(part.data.response.cancel_history[0]).toMatchObject({ amount: 3000, reason: "부분 환불" });
      for (const f of ["pg_tid", "amount", "reason", "cancelled_at", "cancellation_id"]) {
        expect(part.data.response.cancel_history[0]).toHaveProperty(f);
      }

      const full = await cancel({ merchant_uid: p.merchant_uid, checksum: 7000, reason: "전액" });
      expect(full.data.code).toBe(0);
      expect(full.data.response).toMatchObject({ status: "cancelled", cancel_amount: 10000 });
      expect(full.data.response.cancelled_at).toBeGreaterThan(0);
      expect(full.data.response.cancel_history.map((c) => c.amount)).toEqual([3000, 7000]);

      const again2 = await cancel({ imp_uid: p.imp_uid });
      expect(again2.data.code).not.toBe(0);
      // API cancels send no webhook: the payment's only webhook is its approval.
      expect((await webhooksSentFor(t, p.imp_uid)).map((w) => w.status)).toEqual(["paid"]);
      // And a refunded order still cannot be charged again.
      const recharge = await again({ customer_uid: cu, merchant_uid: p.merchant_uid, amount: 10000, name: "x" });
      expect(recharge.data.code).not.toBe(0);
    });

    it("sends a cancellation notice with cancellation_id for each cancel asked with enable_webhook", async () => {
      const p = (await charge(cu, 10000)).response;
      await hooks.waitUntil((w) => w.body.imp_uid === p.imp_uid && w.body.status === "paid");
      const part = await cancel({ imp_uid: p.imp_uid, amount: 4000, checksum: 10000, reason: "콘솔 부분 환불", enable_webhook: true });
      expect(part.data.response.status).toBe("paid");
      const [c1] = part.data.response.cancel_history;
      // The notice reports the cancellation, so its status is "cancelled" although the payment is still paid.
      const n1 = await hooks.waitUntil((w) => w.body.imp_uid === p.imp_uid && w.body.cancellation_id === c1.cancellation_id);
      expect(n1.body).toEqual({ imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, status: "cancelled", cancellation_id: c1.cancellation_id });

      // Form-encoded too (enable_webhook as the string "true").
      const full = await t.api.post<Envelope<Payment>>(
        "/payments/cancel",
        new URLSearchParams({ imp_uid: p.imp_uid, reason: "콘솔 전액 환불", enable_webhook: "true" }).toString(),
        { headers: { "content-type": "application/x-www-form-urlencoded" } },
      );
      expect(full.data.response.status).toBe("cancelled");
      const c2 = full.data.response.cancel_history[1];
      expect(c2.cancellation_id).not.toBe(c1.cancellation_id);
      const n2 = await hooks.waitUntil((w) => w.body.cancellation_id === c2.cancellation_id);
      expect(n2.body).toEqual({ imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, status: "cancelled", cancellation_id: c2.cancellation_id });
      expect((await webhooksSentFor(t, p.imp_uid)).map((w) => w.status)).toEqual(["paid", "cancelled", "cancelled"]);

      // A redelivery of the cancelled payment names its last cancellation.
      const again2 = await t.http.post("/__emulator/webhooks/redeliver", { imp_uid: p.imp_uid });
      expect(again2.data.webhooks.delivered).toBe(1);
      const log = (await t.http.get("/__emulator/webhooks")).data.webhooks.filter((w: { body: { imp_uid: string } }) => w.body.imp_uid === p.imp_uid);
      expect(log.at(-1).body).toEqual({ imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, status: "cancelled", cancellation_id: c2.cancellation_id });
    });

    it("refuses an enable_webhook that is not a boolean, and cancels nothing", async () => {
      const p = (await charge(cu, 10000)).response;
      const r = await cancel({ imp_uid: p.imp_uid, amount: 1000, enable_webhook: "yes" });
      expect(r.status).toBe(400);
      expect((await t.api.get<Envelope<Payment>>(`/payments/${p.imp_uid}`)).data.response.cancel_amount).toBe(0);
    });

    it("refuses a checksum that differs from the refundable balance, and changes nothing", async () => {
      const p = (await charge(cu, 10000)).response;
      const r = await cancel({ imp_uid: p.imp_uid, amount: 1000, checksum: 9999 });
      expect(r.status).toBe(200);
      expect(r.data.code).not.toBe(0);
      expect(r.data.response).toBeNull();
      expect((await t.api.get<Envelope<Payment>>(`/payments/${p.imp_uid}`)).data.response.cancel_amount).toBe(0);
    });

    it("refuses an over-refund", async () => {
      const p = (await charge(cu, 5000)).response;
      expect((await cancel({ imp_uid: p.imp_uid, amount: 4000 })).data.code).toBe(0);
      const over = await cancel({ imp_uid: p.imp_uid, amount: 2000 });
      expect(over.data.code).not.toBe(0);
      expect(over.data.message).toContain("1000");
    });

    it("refuses unknown payments, failed payments and requests without an id", async () => {
      expect((await cancel({ imp_uid: "imps_000000000000" })).data.code).not.toBe(0);
      const failedCu = uid("cust");
      await issueKey(t, failedCu, { card_number: TEST_CARDS.DECLINED_LIMIT });
      const failed = (await charge(failedCu)).response;
      expect((await cancel({ imp_uid: failed.imp_uid })).data.code).not.toBe(0);
      const none = await cancel({ reason: "?" });
      expect(none.status).toBe(400);
    });
  });

  describe("prepare", () => {
    it("registers, reads and updates a prepared amount; 404 when unknown; duplicate refused", async () => {
      const mu = uid("order");
      const r = await t.api.post<Envelope>("/payments/prepare", { merchant_uid: mu, amount: 15000 });
      expect(r.data).toEqual({ code: 0, message: null, response: { merchant_uid: mu, amount: 15000, currency: null } });
      expect((await t.api.get<Envelope>(`/payments/prepare/${mu}`)).data.response).toMatchObject({ amount: 15000 });
      expect((await t.api.post<Envelope>("/payments/prepare", { merchant_uid: mu, amount: 1 })).data.code).not.toBe(0);
      expect((await t.api.put<Envelope>("/payments/prepare", { merchant_uid: mu, amount: 20000 })).data.response).toMatchObject({ amount: 20000 });
      expect((await t.api.get<Envelope>(`/payments/prepare/${uid("none")}`)).status).toBe(404);
      expect((await t.api.put<Envelope>("/payments/prepare", { merchant_uid: uid("none"), amount: 1 })).status).toBe(404);
    });
  });

  it("answers 404 envelopes for unknown payments", async () => {
    const r = await t.api.get<Envelope>("/payments/imps_doesnotexist");
    expect(r.status).toBe(404);
    expect(r.data).toEqual({ code: expect.any(Number), message: "존재하지 않는 결제정보입니다.", response: null });
    expect(r.data.code).not.toBe(0);
    expect((await t.api.get("/payments/find/nothing_here")).status).toBe(404);
  });
});
