import { PortOneClient, Webhook } from "@portone/server-sdk";
import { TEST_CARDS } from "../src";
import { advance, clockNow, startTestEmulator, uid, WebhookReceiver, type ReceivedWebhook, type TestEmulator } from "./helpers";

/*
 * The V2 API driven by PortOne's own @portone/server-sdk (a client nobody
 * here wrote), and its Webhook.verify on the emulator's signed webhooks.
 */

const SECRET = "portone_emulator_secret";
const STORE = "store-emulator";
const CHANNEL = "channel-key-emulator";

let t: TestEmulator;
let receiver: WebhookReceiver;
let portone: ReturnType<typeof PortOneClient>;
let webhookSecret: string;

beforeAll(async () => {
  receiver = await new WebhookReceiver().start();
  t = await startTestEmulator({ v2: { port: 0, webhookUrl: receiver.url }, webhookUrl: receiver.url });
  const v2 = t.emulator.v2;
  if (!v2) throw new Error("V2 not started");
  webhookSecret = v2.webhookSecret;
  portone = PortOneClient({ secret: SECRET, baseUrl: v2.url, storeId: STORE });
});

afterAll(async () => {
  await t.close();
  await receiver.close();
});

const card = (number: string) => ({
  card: { credential: { number, expiryYear: "99", expiryMonth: "12", birthOrBusinessRegistrationNumber: "900101", passwordTwoDigits: "12" } },
});

async function issue(number: string = TEST_CARDS.VALID): Promise<string> {
  const r = await portone.payment.billingKey.issueBillingKey({ channelKey: CHANNEL, method: card(number), customer: { id: uid("cust"), name: { full: "홍길동" } } });
  return r.billingKeyInfo.billingKey;
}

/** The error an SDK call throws, with its V2 `data` (type, message, pgCode...). */
async function failure(call: Promise<unknown>): Promise<{ name: string; data: Record<string, unknown> }> {
  try {
    await call;
  } catch (e) {
    return e as { name: string; data: Record<string, unknown> };
  }
  throw new Error("the call succeeded");
}

/** A received webhook, verified by the SDK with the emulator's secret. */
async function verified(hook: ReceivedWebhook) {
  return (await Webhook.verify(webhookSecret, hook.raw, hook.headers as Record<string, string>)) as { type: string; timestamp: string; data: Record<string, string> };
}

/** A time `seconds` after the emulator's clock (tests move it, so it runs ahead of real time). */
const fromNow = async (seconds: number) => new Date(((await clockNow(t)) + seconds) * 1000).toISOString();

const v2Hook = (type: string, key: "paymentId" | "billingKey", value: string) => (h: ReceivedWebhook) =>
  typeof h.body.type === "string" && h.body.type === type && (h.body.data as unknown as Record<string, string>)[key] === value;

describe("billing keys", () => {
  it("issues a key the emulator names, reads it, deletes it, with signed BillingKey webhooks", async () => {
    const billingKey = await issue();
    const info = await portone.payment.billingKey.getBillingKeyInfo({ billingKey });
    expect(info).toMatchObject({ status: "ISSUED", billingKey, storeId: STORE, customer: { name: "홍길동" } });
    expect(JSON.stringify(info)).not.toContain("4242424242424242");

    const issued = await verified(await receiver.waitUntil(v2Hook("BillingKey.Issued", "billingKey", billingKey)));
    expect(issued).toMatchObject({ type: "BillingKey.Issued", data: { storeId: STORE, billingKey } });

    const deleted = await portone.payment.billingKey.deleteBillingKey({ billingKey });
    expect(typeof deleted.deletedAt).toBe("string");
    expect(await portone.payment.billingKey.getBillingKeyInfo({ billingKey })).toMatchObject({ status: "DELETED" });
    await verified(await receiver.waitUntil(v2Hook("BillingKey.Deleted", "billingKey", billingKey)));
    expect((await failure(portone.payment.billingKey.deleteBillingKey({ billingKey }))).data.type).toBe("BILLING_KEY_ALREADY_DELETED");
  });

  it("refuses the refused test card as a PG error, and an unknown key as not found", async () => {
    const e = await failure(issue(TEST_CARDS.BILLING_KEY_REFUSED));
    expect(e.name).toBe("IssueBillingKeyError");
    expect(e.data).toMatchObject({ type: "PG_PROVIDER", pgCode: "F113" });
    expect((await failure(portone.payment.billingKey.getBillingKeyInfo({ billingKey: "billing-key-nope" }))).data.type).toBe("BILLING_KEY_NOT_FOUND");
  });

  it("rejects a wrong API secret", async () => {
    const other = PortOneClient({ secret: "wrong", baseUrl: t.emulator.v2?.url });
    expect((await failure(other.payment.billingKey.getBillingKeyInfo({ billingKey: "x" }))).data.type).toBe("UNAUTHORIZED");
  });
});

describe("tokens", () => {
  it("logs in with the API secret, refreshes, and accepts the bearer token until the clock passes 30 minutes", async () => {
    const url = t.emulator.v2?.url ?? "";
    const get = (authorization: string) => fetch(`${url}/billing-keys/billing-key-none`, { headers: { authorization } });
    const login = await portone.auth.loginViaApiSecret({ apiSecret: SECRET });
    expect((await get(`Bearer ${login.accessToken}`)).status).toBe(404);
    expect((await failure(portone.auth.loginViaApiSecret({ apiSecret: "wrong" }))).data.type).toBe("UNAUTHORIZED");

    const refreshed = await portone.auth.refreshToken({ refreshToken: login.refreshToken });
    expect(refreshed.accessToken).not.toBe(login.accessToken);
    expect((await failure(portone.auth.refreshToken({ refreshToken: login.refreshToken }))).data.type).toBe("UNAUTHORIZED");

    await advance(t, 31 * 60);
    expect((await get(`Bearer ${refreshed.accessToken}`)).status).toBe(401);
    const again = await portone.auth.refreshToken({ refreshToken: refreshed.refreshToken });
    expect((await get(`Bearer ${again.accessToken}`)).status).toBe(404);
  });
});

describe("payments", () => {
  it("charges a key with taxFree and vat, and reads the payment back", async () => {
    const billingKey = await issue();
    const paymentId = uid("pay");
    const r = await portone.payment.payWithBillingKey({ paymentId, billingKey, orderName: "월 구독", amount: { total: 11000, taxFree: 1000, vat: 909 }, currency: "KRW" });
    expect(typeof r.payment.pgTxId).toBe("string");
    const p = await portone.payment.getPayment({ paymentId });
    expect(p).toMatchObject({ status: "PAID", id: paymentId, billingKey, orderName: "월 구독", amount: { total: 11000, taxFree: 1000, vat: 909, paid: 11000, cancelled: 0 } });
    const paid = await verified(await receiver.waitUntil(v2Hook("Transaction.Paid", "paymentId", paymentId)));
    expect(paid.data).toMatchObject({ storeId: STORE, paymentId, transactionId: (p as { transactionId: string }).transactionId });

    const again = await failure(portone.payment.payWithBillingKey({ paymentId, billingKey, orderName: "월 구독", amount: { total: 11000 }, currency: "KRW" }));
    expect(again.data.type).toBe("ALREADY_PAID");
  });

  it("answers a decline with an HTTP error; the failed payment stays readable", async () => {
    const billingKey = await issue(TEST_CARDS.DECLINED_LIMIT);
    const paymentId = uid("pay");
    const e = await failure(portone.payment.payWithBillingKey({ paymentId, billingKey, orderName: "월 구독", amount: { total: 9900 }, currency: "KRW" }));
    expect(e.name).toBe("PayWithBillingKeyError");
    expect(e.data).toMatchObject({ type: "PG_PROVIDER", pgCode: "F002" });
    expect(await portone.payment.getPayment({ paymentId })).toMatchObject({ status: "FAILED", failure: { pgCode: "F002" } });
    await verified(await receiver.waitUntil(v2Hook("Transaction.Failed", "paymentId", paymentId)));
    expect((await failure(portone.payment.getPayment({ paymentId: uid("none") }))).data.type).toBe("PAYMENT_NOT_FOUND");
  });

  it("cancels in parts against currentCancellableAmount", async () => {
    const billingKey = await issue();
    const paymentId = uid("pay");
    await portone.payment.payWithBillingKey({ paymentId, billingKey, orderName: "월 구독", amount: { total: 10000 }, currency: "KRW" });

    const stale = await failure(portone.payment.cancelPayment({ paymentId, amount: 3000, reason: "부분 환불", currentCancellableAmount: 9000 }));
    expect(stale.data.type).toBe("CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN");
    const part = await portone.payment.cancelPayment({ paymentId, amount: 3000, reason: "부분 환불", currentCancellableAmount: 10000 });
    expect(part.cancellation).toMatchObject({ status: "SUCCEEDED", totalAmount: 3000 });
    expect(await portone.payment.getPayment({ paymentId })).toMatchObject({ status: "PARTIAL_CANCELLED", amount: { cancelled: 3000 } });
    await verified(await receiver.waitUntil(v2Hook("Transaction.PartialCancelled", "paymentId", paymentId)));

    const over = await failure(portone.payment.cancelPayment({ paymentId, amount: 8000, reason: "초과" }));
    expect(over.data.type).toBe("CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT");
    await portone.payment.cancelPayment({ paymentId, reason: "전액 환불", currentCancellableAmount: 7000 });
    const p = await portone.payment.getPayment({ paymentId });
    expect(p).toMatchObject({ status: "CANCELLED", amount: { cancelled: 10000 } });
    expect((p as { cancellations: unknown[] }).cancellations).toHaveLength(2);
    await verified(await receiver.waitUntil(v2Hook("Transaction.Cancelled", "paymentId", paymentId)));
    expect((await failure(portone.payment.cancelPayment({ paymentId, reason: "again" }))).data.type).toBe("PAYMENT_ALREADY_CANCELLED");
  });
});

describe("schedules", () => {
  it("creates one per call, lists and revokes them, and runs the rest on the shared clock", async () => {
    const billingKey = await issue();
    const soon = await fromNow(3600);
    const kept = uid("sched");
    const dropped = uid("sched");
    const payment = { billingKey, orderName: "정기결제", amount: { total: 4900 }, currency: "KRW" as const };
    const a = await portone.payment.paymentSchedule.createPaymentSchedule({ paymentId: kept, payment, timeToPay: soon });
    const b = await portone.payment.paymentSchedule.createPaymentSchedule({ paymentId: dropped, payment, timeToPay: soon });
    expect(a.schedule.id).not.toBe(b.schedule.id);
    const dup = await failure(portone.payment.paymentSchedule.createPaymentSchedule({ paymentId: kept, payment, timeToPay: soon }));
    expect(dup.data.type).toBe("PAYMENT_SCHEDULE_ALREADY_EXISTS");

    expect(await portone.payment.paymentSchedule.getPaymentSchedule({ paymentScheduleId: a.schedule.id })).toMatchObject({
      status: "SCHEDULED",
      paymentId: kept,
      billingKey,
      totalAmount: 4900,
    });
    const listed = await portone.payment.paymentSchedule.getPaymentSchedules({ filter: { billingKey } });
    expect(listed.items.map((s) => (s as { paymentId: string }).paymentId).sort()).toEqual([kept, dropped].sort());

    const revoked = await portone.payment.paymentSchedule.revokePaymentSchedules({ scheduleIds: [b.schedule.id] });
    expect(revoked.revokedScheduleIds).toEqual([b.schedule.id]);
    const again = await failure(portone.payment.paymentSchedule.revokePaymentSchedules({ scheduleIds: [b.schedule.id] }));
    expect(again.data.type).toBe("PAYMENT_SCHEDULE_ALREADY_REVOKED");

    const ran = await advance(t, 2 * 3600);
    expect(ran.executed.map((e) => e.merchant_uid)).toContain(kept);
    expect(ran.executed.map((e) => e.merchant_uid)).not.toContain(dropped);
    expect(await portone.payment.paymentSchedule.getPaymentSchedule({ paymentScheduleId: a.schedule.id })).toMatchObject({ status: "SUCCEEDED" });
    expect(await portone.payment.getPayment({ paymentId: kept })).toMatchObject({ status: "PAID", scheduleId: a.schedule.id });
    // Delivered before the advance answered: V2's signed webhook, and no V1 notice for a V2 payment.
    const paid = receiver.received.find(v2Hook("Transaction.Paid", "paymentId", kept));
    expect(paid).toBeDefined();
    await verified(paid as ReceivedWebhook);
    expect(receiver.received.some((h) => h.body.merchant_uid === kept)).toBe(false);
    expect((await failure(portone.payment.getPayment({ paymentId: dropped }))).data.type).toBe("PAYMENT_NOT_FOUND");
  });

  it("runs a schedule of a deleted key as a failed payment, with V2's Transaction.Failed", async () => {
    const billingKey = await issue();
    const paymentId = uid("sched");
    const payment = { billingKey, orderName: "정기결제", amount: { total: 4900 }, currency: "KRW" as const };
    await portone.payment.paymentSchedule.createPaymentSchedule({ paymentId, payment, timeToPay: await fromNow(3600) });
    await portone.payment.billingKey.deleteBillingKey({ billingKey });
    const e = await failure(portone.payment.payWithBillingKey({ paymentId: uid("pay"), ...payment }));
    expect(e.data.type).toBe("BILLING_KEY_ALREADY_DELETED");

    await advance(t, 2 * 3600);
    expect(await portone.payment.getPayment({ paymentId })).toMatchObject({ status: "FAILED" });
    const failed = receiver.received.find(v2Hook("Transaction.Failed", "paymentId", paymentId));
    expect(failed).toBeDefined();
    await verified(failed as ReceivedWebhook);
  });

  it("revokes every pending schedule of a billing key", async () => {
    const billingKey = await issue();
    const at = await fromNow(30 * 86400);
    const payment = { billingKey, orderName: "정기결제", amount: { total: 4900 }, currency: "KRW" as const };
    const ids = [];
    for (let i = 0; i < 2; i++) ids.push((await portone.payment.paymentSchedule.createPaymentSchedule({ paymentId: uid("sched"), payment, timeToPay: at })).schedule.id);
    const r = await portone.payment.paymentSchedule.revokePaymentSchedules({ billingKey });
    expect([...r.revokedScheduleIds].sort()).toEqual(ids.sort());
    const listed = await portone.payment.paymentSchedule.getPaymentSchedules({ filter: { billingKey, status: ["SCHEDULED"] } });
    expect(listed.items).toEqual([]);
  });
});

describe("webhook signatures", () => {
  it("do not verify with another secret", async () => {
    const billingKey = await issue();
    const hook = await receiver.waitUntil(v2Hook("BillingKey.Issued", "billingKey", billingKey));
    await expect(Webhook.verify("whsec_" + Buffer.from("another secret").toString("base64"), hook.raw, hook.headers as Record<string, string>)).rejects.toThrow();
    await expect(Webhook.verify(webhookSecret, hook.raw.replace(billingKey, "billing-key-forged"), hook.headers as Record<string, string>)).rejects.toThrow();
  });
});

describe("faults", () => {
  it("an http500 fault on a V2 route fails that call only, charging nothing", async () => {
    const billingKey = await issue();
    const paymentId = uid("pay");
    const f = await t.http.post("/__emulator/faults", { route: "POST /payments/{paymentId}/billing-key", mode: "http500", times: 1 });
    expect(f.status).toBe(201);
    const args = { paymentId, billingKey, orderName: "월 구독", amount: { total: 1000 }, currency: "KRW" as const };
    await expect(portone.payment.payWithBillingKey(args)).rejects.toThrow();
    expect((await failure(portone.payment.getPayment({ paymentId }))).data.type).toBe("PAYMENT_NOT_FOUND");
    await portone.payment.payWithBillingKey(args);
    expect(await portone.payment.getPayment({ paymentId })).toMatchObject({ status: "PAID" });
  });
});
