import { TEST_CARDS } from "../src";
import { advance, clockNow, startTestEmulator, uid, WebhookReceiver, type Envelope, type TestEmulator } from "./helpers";

interface CheckoutAnswer {
  imp_uid: string;
  merchant_uid: string;
  status: string;
  fail_reason: string | null;
  webhooks: { delivered: number; failed: number; dropped: number };
}

type Payment = Record<string, unknown> & { status: string; imp_uid: string };

describe("emulator: browser checkout, virtual accounts and redelivery", () => {
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

  const checkout = (body: Record<string, unknown>) => t.http.post<CheckoutAnswer & { error?: string }>("/__emulator/checkout", body);
  const payment = async (impUid: string) => (await t.api.get<Envelope<Payment>>(`/payments/${impUid}`)).data.response;

  it("card: pays at once (channel pc), sends the webhook before answering", async () => {
    const mu = uid("order");
    const r = await checkout({ merchant_uid: mu, amount: 12000, name: "상품", buyer_name: "홍길동" });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ merchant_uid: mu, status: "paid", webhooks: { delivered: 1, failed: 0, dropped: 0 } });
    expect(r.data.imp_uid).toMatch(/^imp_\d{12}$/);
    expect(hooks.received.some((h) => h.body.imp_uid === r.data.imp_uid && h.body.status === "paid")).toBe(true);
    expect(await payment(r.data.imp_uid)).toMatchObject({ status: "paid", channel: "pc", pay_method: "card", amount: 12000, buyer_name: "홍길동" });
    // A paid order cannot be paid again.
    expect((await checkout({ merchant_uid: mu, amount: 12000 })).status).toBe(409);
  });

  it("matches the prepared amount; a different amount fails as Iamport would (no webhook)", async () => {
    const mu = uid("order");
    await t.api.post("/payments/prepare", { merchant_uid: mu, amount: 50000 });
    const bad = await checkout({ merchant_uid: mu, amount: 100 });
    expect(bad.data.status).toBe("failed");
    expect(bad.data.fail_reason).toContain("50000");
    expect(bad.data.webhooks).toEqual({ delivered: 0, failed: 0, dropped: 0 });
    expect((await payment(bad.data.imp_uid)).status).toBe("failed");

    const good = await checkout({ merchant_uid: mu, amount: 50000 });
    expect(good.data.status).toBe("paid");
  });

  it("ignore_prepare lets a forged amount through, so the merchant server's verification can be tested", async () => {
    const mu = uid("order");
    await t.api.post("/payments/prepare", { merchant_uid: mu, amount: 50000 });
    const forged = await checkout({ merchant_uid: mu, amount: 100, ignore_prepare: true });
    expect(forged.data.status).toBe("paid");
    const p = await payment(forged.data.imp_uid);
    expect(p.amount).toBe(100);
    expect(hooks.received.some((h) => h.body.imp_uid === forged.data.imp_uid)).toBe(true);
  });

  it("with customer_uid it issues a billing key (amount 0 allowed) usable by /again", async () => {
    const cu = uid("cust");
    const r = await checkout({ merchant_uid: uid("issue"), amount: 0, customer_uid: cu });
    expect(r.data.status).toBe("paid");
    expect(await payment(r.data.imp_uid)).toMatchObject({ customer_uid: cu, customer_uid_usage: "issue", amount: 0 });
    expect((await t.api.get(`/subscribe/customers/${cu}`)).status).toBe(200);
    const charged = await t.api.post<Envelope<Payment>>("/subscribe/payments/again", { customer_uid: cu, merchant_uid: uid("o"), amount: 900, name: "x" });
    expect(charged.data.response.status).toBe("paid");

    const refused = await checkout({ merchant_uid: uid("issue"), amount: 0, customer_uid: uid("cust"), card_number: TEST_CARDS.BILLING_KEY_REFUSED });
    expect(refused.data.status).toBe("failed");
    expect(refused.data.fail_reason).toContain("빌키 발급에 실패");
    const declined = await checkout({ merchant_uid: uid("o"), amount: 1000, card_number: TEST_CARDS.DECLINED_LIMIT });
    expect(declined.data.status).toBe("failed");
    expect(declined.data.fail_reason).toContain("한도초과");
  });

  it("vbank: ready with account details and a webhook; deposit makes it paid with another webhook", async () => {
    const mu = uid("vbank");
    const r = await checkout({ merchant_uid: mu, amount: 33000, pay_method: "vbank" });
    expect(r.data).toMatchObject({ status: "ready", webhooks: { delivered: 1, failed: 0, dropped: 0 } });
    const ready = await payment(r.data.imp_uid);
    expect(ready).toMatchObject({ status: "ready", pay_method: "vbank", paid_at: 0 });
    for (const f of ["vbank_num", "vbank_name", "vbank_holder", "vbank_code"]) expect(typeof ready[f]).toBe("string");
    expect(ready.vbank_date as number).toBeGreaterThan(await clockNow(t));
    expect(ready.vbank_issued_at as number).toBeGreaterThan(0);
    expect(hooks.received.some((h) => h.body.imp_uid === r.data.imp_uid && h.body.status === "ready")).toBe(true);

    const dep = await t.http.post<CheckoutAnswer>("/__emulator/vbank/deposit", { imp_uid: r.data.imp_uid });
    expect(dep.status).toBe(200);
    expect(dep.data).toMatchObject({ status: "paid", webhooks: { delivered: 1 } });
    expect(hooks.received.some((h) => h.body.imp_uid === r.data.imp_uid && h.body.status === "paid")).toBe(true);
    const paid = await payment(r.data.imp_uid);
    expect(paid.status).toBe("paid");
    expect(paid.paid_at as number).toBeGreaterThan(0);

    // Depositing twice, or into something that is not a waiting virtual account, is refused.
    expect((await t.http.post("/__emulator/vbank/deposit", { imp_uid: r.data.imp_uid })).status).toBe(409);
    expect((await t.http.post("/__emulator/vbank/deposit", { imp_uid: "imp_000000000000" })).status).toBe(404);
    expect((await t.http.post("/__emulator/vbank/deposit", {})).status).toBe(400);
  });

  it("vbank: a deposit after the due date is refused; an unpaid account can be cancelled", async () => {
    const late = await checkout({ merchant_uid: uid("vbank"), amount: 1000, pay_method: "vbank" });
    await advance(t, 4 * 24 * 3600);
    expect((await t.http.post("/__emulator/vbank/deposit", { imp_uid: late.data.imp_uid })).status).toBe(409);
    const cancelled = await t.api.post<Envelope<Payment>>("/payments/cancel", { imp_uid: late.data.imp_uid, reason: "미입금" });
    expect(cancelled.data.response).toMatchObject({ status: "cancelled", cancel_amount: 0 });
  });

  it("redelivers a payment's webhook `times` times, `concurrency` at once", async () => {
    const r = await checkout({ merchant_uid: uid("order"), amount: 1000 });
    const before = hooks.received.filter((h) => h.body.imp_uid === r.data.imp_uid).length;
    const red = await t.http.post<{ sent: number; webhooks: { delivered: number } }>("/__emulator/webhooks/redeliver", {
      imp_uid: r.data.imp_uid,
      times: 5,
      concurrency: 5,
    });
    expect(red.status).toBe(200);
    expect(red.data).toMatchObject({ sent: 5, webhooks: { delivered: 5, failed: 0, dropped: 0 } });
    expect(hooks.received.filter((h) => h.body.imp_uid === r.data.imp_uid).length).toBe(before + 5);

    expect((await t.http.post("/__emulator/webhooks/redeliver", { imp_uid: "imp_nope" })).status).toBe(404);
    expect((await t.http.post("/__emulator/webhooks/redeliver", { imp_uid: r.data.imp_uid, times: 0 })).status).toBe(400);
  });

  it("validates checkout input", async () => {
    expect((await checkout({ amount: 100 })).status).toBe(400);
    expect((await checkout({ merchant_uid: uid("o"), amount: -1 })).status).toBe(400);
    expect((await checkout({ merchant_uid: uid("o"), amount: 100, pay_method: "bitcoin" })).status).toBe(400);
    expect((await checkout({ merchant_uid: uid("o"), amount: 0 })).status).toBe(400);
    const unknown = await t.http.get<{ error: string }>("/__emulator/nothing");
    expect(unknown.status).toBe(404);
    expect(unknown.data.error).toContain("/__emulator/nothing");
  });
});

describe("emulator: POST /vbanks (a virtual account issued by API)", () => {
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

  const issue = (body: Record<string, unknown>) => t.api.post<Envelope<Payment>>("/vbanks", body);

  it("issues a ready virtual account, notifies it, and a deposit pays it", async () => {
    const now = await clockNow(t);
    const mu = uid("vb");
    const r = await issue({ channel_key: "channel-key-test", merchant_uid: mu, amount: 33000, vbank_code: "088", vbank_due: now + 86_400, vbank_holder: "홍길동상점", name: "주문" });
    expect(r.status).toBe(200);
    expect(r.data.code).toBe(0);
    const p = r.data.response;
    for (const f of ["imp_uid", "merchant_uid", "amount", "cancel_amount", "currency", "status", "sandbox"]) expect(p).toHaveProperty(f);
    expect(p).toMatchObject({
      merchant_uid: mu,
      amount: 33000,
      status: "ready",
      pay_method: "vbank",
      channel: "api",
      vbank_code: "088",
      vbank_name: "신한은행",
      vbank_holder: "홍길동상점",
      vbank_date: now + 86_400,
      vbank_issued_at: now,
    });
    expect(p.vbank_num).toMatch(/^\d{14}$/);
    const hook = await hooks.waitUntil((w) => w.body.imp_uid === p.imp_uid);
    expect(hook.body).toEqual({ imp_uid: p.imp_uid, merchant_uid: mu, status: "ready" });

    const paid = await t.http.post("/__emulator/vbank/deposit", { imp_uid: p.imp_uid });
    expect(paid.data).toMatchObject({ status: "paid", webhooks: { delivered: 1 } });
    // A paid order cannot get another account.
    const again = await issue({ channel_key: "k", merchant_uid: mu, amount: 33000, vbank_code: "088", vbank_due: now + 86_400 });
    expect(again.status).toBe(200);
    expect(again.data.code).not.toBe(0);
  });

  it("refuses missing parameters (400), an unknown bank or a due time in the past (non-zero code)", async () => {
    const now = await clockNow(t);
    const base = { channel_key: "k", merchant_uid: uid("vb"), amount: 1000, vbank_code: "004", vbank_due: now + 3600 };
    for (const missing of ["channel_key", "merchant_uid", "amount", "vbank_code", "vbank_due"]) {
      const body: Record<string, unknown> = { ...base };
      delete body[missing];
      expect((await issue(body)).status).toBe(400);
    }
    const bank = await issue({ ...base, vbank_code: "999" });
    expect(bank.data).toMatchObject({ response: null, message: expect.stringContaining("은행코드") });
    expect(bank.data.code).not.toBe(0);
    const past = await issue({ ...base, vbank_due: now - 1 });
    expect(past.data.code).not.toBe(0);
  });
});
