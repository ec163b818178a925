import crypto from "node:crypto";
import { PortOneClient, Webhook } from "@portone/server-sdk";
import axios from "axios";
import { loadConfig } from "../../src/config";
import { createLogger } from "../../src/logger";
import { startServer } from "../../src/server";
import { API_KEY, createTestDatabase, GOOD_CARD, Harness, PAYMENT_FIELDS, Provider, registerCard, TEST_CARDS, uid } from "../support/harness";
import { advancePastNextPayment, advanceTo, cancelSub, emulatorNow, getSub, paymentRows, renewalUid, startSub, startSubHarness, waitFor } from "../subscriptions/helpers";

/**
 * The merchant's GraphQL scenarios on Iamport V1 and on PortOne V2, both
 * served by the emulator over real HTTP: the same queries and the same
 * answers whichever provider the server charges through. What differs is
 * checked where it shows (V2's issued billing key, its signed webhooks).
 */
const CHARGE = /* GraphQL */ `mutation($input: ChargeAgainInput!) { chargeAgain(input: $input) { ${PAYMENT_FIELDS} } }`;
const SCHEDULE = /* GraphQL */ `mutation($input: SchedulePaymentsInput!) { schedulePayments(input: $input) { ${PAYMENT_FIELDS} } }`;
const UNSCHEDULE = /* GraphQL */ `mutation($c: String!, $m: [String!]) { unschedulePayments(customerUid: $c, merchantUids: $m) { ${PAYMENT_FIELDS} } }`;
const PREPARE = /* GraphQL */ `mutation($input: PreparePaymentInput!) { preparePayment(input: $input) { merchantUid amount status } }`;
const VERIFY = /* GraphQL */ `mutation($input: VerifyPaymentInput!) { verifyPayment(input: $input) { outcome message payment { ${PAYMENT_FIELDS} } } }`;
const REFUND = /* GraphQL */ `mutation($input: RefundPaymentInput!) { refundPayment(input: $input) { ${PAYMENT_FIELDS} } }`;
const PAYMENT = /* GraphQL */ `query($m: String!) { payment(merchantUid: $m) { ${PAYMENT_FIELDS} } }`;
const CARD = /* GraphQL */ `query($c: String!) { card(customerUid: $c) { customerUid status cardNumberMasked billingKey } }`;

interface Pay {
  merchantUid: string;
  impUid: string | null;
  amount: number;
  paidAmount: number | null;
  cancelledAmount: number;
  status: string;
  failReason: string | null;
}

describe.each<Provider>(["v1", "v2"])("on %s", (provider) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startSubHarness({ provider });
  });
  afterAll(async () => {
    await h?.close();
  });

  const charge = async (customerUid: string, amount: number): Promise<Pay> =>
    (await h.client.request<{ chargeAgain: Pay }>(CHARGE, { input: { customerUid, amount, name: "Matrix" } })).chargeAgain;

  /** The customer pays an order in the browser: V1's payment window, or on V2 a payment of the order's paymentId. */
  async function browserPayment(merchantUid: string, amount: number, customerUid: string): Promise<string> {
    if (provider === "v1") {
      const r = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount, ignore_prepare: true });
      expect(r.status).toBe(200);
      return r.data.imp_uid as string;
    }
    // V2's payment window is not emulated: the payment of the order's paymentId is made with PortOne's own SDK.
    const v2 = h.emulator.v2!;
    const portone = PortOneClient({ secret: v2.apiSecret, baseUrl: v2.url, storeId: v2.storeId });
    const { card } = await h.client.request<{ card: { billingKey: string } }>(CARD, { c: customerUid });
    await portone.payment.payWithBillingKey({ paymentId: merchantUid, billingKey: card.billingKey, orderName: "Browser", amount: { total: amount }, currency: "KRW" });
    return merchantUid;
  }

  it("registers a card: V2 issues the billing key, V1's is the customerUid", async () => {
    const customerUid = await registerCard(h, uid("reg"));
    const { card } = await h.client.request<{ card: { status: string; cardNumberMasked: string; billingKey: string | null } }>(CARD, { c: customerUid });
    expect(card).toMatchObject({ status: "ACTIVE", cardNumberMasked: expect.stringMatching(/4242$/) });
    if (provider === "v2") expect(card.billingKey).toMatch(/^billing-key-/);
    else expect(card.billingKey).toBeNull();
    const refused = await h.gql(`mutation($c: String!) { registerCard(input: {customerUid: $c, cardNumber: "${TEST_CARDS.refused}", expiry: "2031-12", birth: "880101"}) { status } }`, {
      c: uid("refused"),
    });
    expect(refused.errors?.[0].extensions?.code).toBe("CARD_REJECTED");
  });

  it("chargeAgain: paid, and a decline is a FAILED payment with the reason, not an error", async () => {
    const good = await registerCard(h, uid("chg"));
    const paid = await charge(good, 12_000);
    expect(paid).toMatchObject({ status: "PAID", amount: 12_000, paidAmount: 12_000 });
    const bad = await registerCard(h, uid("dec"), TEST_CARDS.declined);
    const failed = await charge(bad, 5_000);
    expect(failed.status).toBe("FAILED");
    expect(failed.failReason).toMatch(/한도/);
  });

  it("a charge whose answer is lost is OUTCOME_UNKNOWN naming the merchantUid; a repeat finds it paid, charged once", async () => {
    const fault = async (route: string, mode: string) => expect((await h.emu.post("/__emulator/faults", { route, mode, times: 1 })).status).toBe(201);
    const customerUid = await registerCard(h, uid("lost"));
    const merchantUid = uid("lost_o");
    const payments = async () => (await h.emu.get<{ payments: number }>("/__emulator/health")).data.payments;
    const before = await payments();
    // The charge takes effect and its answer never comes; the look-up that follows fails too.
    await fault("*", "drop_webhook");
    await fault(provider === "v1" ? "POST /subscribe/payments/again" : "POST /payments/{paymentId}/billing-key", "timeout");
    await fault(provider === "v1" ? "GET /payments/find/{merchant_uid}" : "GET /payments/{paymentId}", "http500");
    const r = await h.gql<{ chargeAgain: Pay }>(CHARGE, { input: { customerUid, amount: 3_300, name: "lost", merchantUid } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUid });
    const again = await h.client.request<{ chargeAgain: Pay }>(CHARGE, { input: { customerUid, amount: 3_300, name: "lost", merchantUid } });
    expect(again.chargeAgain).toMatchObject({ merchantUid, status: "PAID", paidAmount: 3_300 });
    expect(await payments()).toBe(before + 1);
  });

  it("schedulePayments: registered, charged when the clock reaches them, and the rest unscheduled", async () => {
    const customerUid = await registerCard(h, uid("sch"));
    const now = await emulatorNow(h);
    const at = (s: number) => new Date((now + s) * 1000).toISOString();
    const { schedulePayments } = await h.client.request<{ schedulePayments: Pay[] }>(SCHEDULE, {
      input: {
        customerUid,
        schedules: [
          { amount: 3_000, name: "first", scheduleAt: at(3600) },
          { amount: 4_000, name: "second", scheduleAt: at(7 * 86_400) },
        ],
      },
    });
    expect(schedulePayments.map((p) => p.status)).toEqual(["SCHEDULED", "SCHEDULED"]);
    const [first, second] = schedulePayments;
    await advanceTo(h, now + 3700);
    const { payment } = await h.client.request<{ payment: Pay }>(PAYMENT, { m: first.merchantUid });
    expect(payment).toMatchObject({ status: "PAID", paidAmount: 3_000 });
    const { unschedulePayments } = await h.client.request<{ unschedulePayments: Pay[] }>(UNSCHEDULE, { c: customerUid, m: [second.merchantUid] });
    expect(unschedulePayments).toEqual([expect.objectContaining({ merchantUid: second.merchantUid, status: "REVOKED" })]);
    // Nothing is charged when its time comes.
    const ran = await advanceTo(h, now + 8 * 86_400);
    expect(ran.executed.map((e) => e.merchant_uid)).not.toContain(second.merchantUid);
  });

  it("verifyPayment: a browser payment of the prepared amount is PAID; another amount is FORGERY", async () => {
    const customerUid = await registerCard(h, uid("ver"));
    const prepared = async (amount: number) =>
      (await h.client.request<{ preparePayment: { merchantUid: string } }>(PREPARE, { input: { amount, name: "Checkout", customerUid } })).preparePayment.merchantUid;
    const ok = await prepared(15_000);
    const okImp = await browserPayment(ok, 15_000, customerUid);
    const v = await h.client.request<{ verifyPayment: { outcome: string; payment: Pay } }>(VERIFY, { input: { impUid: okImp, merchantUid: ok } });
    expect(v.verifyPayment).toMatchObject({ outcome: "PAID", payment: { status: "PAID", paidAmount: 15_000 } });
    const forged = await prepared(15_000);
    const forgedImp = await browserPayment(forged, 150, customerUid);
    const f = await h.client.request<{ verifyPayment: { outcome: string; payment: Pay } }>(VERIFY, { input: { impUid: forgedImp, merchantUid: forged } });
    expect(f.verifyPayment).toMatchObject({ outcome: "FORGERY", payment: { status: "FORGERY_SUSPECTED" } });
  });

  it("startSubscription, a renewal by the emulator's clock, then cancel revokes the next charge at the provider", async () => {
    const customerUid = await registerCard(h, uid("sub"));
    const sub = await startSub(h, { customerUid, amount: 9_900, interval: "MONTH" });
    expect(sub.status).toBe("ACTIVE");
    await advancePastNextPayment(h, sub);
    let rows = await paymentRows(h, sub.id);
    expect(rows.map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
      [3, "SCHEDULED"],
    ]);
    const renewed = await getSub(h, sub.id);
    expect(renewed.status).toBe("ACTIVE");
    // The period a renewal paid for is kept: the subscription ends at its end.
    const canceled = await cancelSub(h, sub.id);
    expect(canceled).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, nextPaymentAt: null });
    rows = await paymentRows(h, sub.id);
    expect(rows.find((r) => r.merchant_uid === renewalUid(sub.id, 3))?.status).toBe("REVOKED");
    // The provider holds nothing more to charge: the period-3 time passes without a charge.
    const ran = await advancePastNextPayment(h, renewed);
    expect(ran.executed.map((e) => e.merchant_uid)).not.toContain(renewalUid(sub.id, 3));
  });

  it("dunning: a declined renewal makes the subscription PAST_DUE with a retry scheduled", async () => {
    const customerUid = await registerCard(h, uid("dun"), TEST_CARDS.firstOkThenSoftDeclines);
    const sub = await startSub(h, { customerUid, amount: 9_900, interval: "MONTH" });
    expect(sub.status).toBe("ACTIVE");
    const ran = await advancePastNextPayment(h, sub);
    expect(ran.executed).toContainEqual(expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, 1), status: "failed" }));
    const s = await getSub(h, sub.id);
    expect(s.status).toBe("PAST_DUE");
    const rows = await paymentRows(h, sub.id);
    expect(rows.map((r) => [r.period, r.attempt, r.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "FAILED"],
      [2, 2, "SCHEDULED"],
    ]);
    await cancelSub(h, sub.id);
  });

  it("a replaced card takes the renewal already registered: the new card is charged, here declined (PAST_DUE)", async () => {
    const customerUid = await registerCard(h, uid("rep"));
    const sub = await startSub(h, { customerUid, amount: 9_900, interval: "MONTH" });
    // The customer's new card has no money on it.
    await registerCard(h, customerUid, TEST_CARDS.insufficient, { replace: true });
    const ran = await advancePastNextPayment(h, sub);
    expect(ran.executed).toContainEqual(expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, 1), status: "failed" }));
    const s = await getSub(h, sub.id);
    expect(s.status).toBe("PAST_DUE");
    expect(s.statusReason).toMatch(/잔액부족/);
    await cancelSub(h, sub.id);
  });

  /** The customer's browser is given a billing key: V1's under the customer_uid, V2's issued with the customer_uid as its customer id. */
  async function browserKey(customerUid: string, cardNumber = GOOD_CARD, owner = customerUid): Promise<Record<string, string>> {
    const card = { number: cardNumber.replace(/-/g, ""), expiryYear: "31", expiryMonth: "12", birthOrBusinessRegistrationNumber: "880101" };
    if (provider === "v1") {
      const r = await h.emu.post(`/subscribe/customers/${customerUid}`, { card_number: cardNumber, expiry: "2031-12", birth: "880101" }, { headers: { Authorization: await h.iamportToken() } });
      expect(r.data.code).toBe(0);
      return { customer_uid: customerUid };
    }
    const v2 = h.emulator.v2!;
    const portone = PortOneClient({ secret: v2.apiSecret, baseUrl: v2.url, storeId: v2.storeId });
    const { billingKeyInfo } = await portone.payment.billingKey.issueBillingKey({ channelKey: v2.channelKey, method: { card: { credential: card } }, customer: { id: owner } });
    return { customer_uid: customerUid, billing_key: billingKeyInfo.billingKey };
  }
  const MERCHANT = { headers: { authorization: `Bearer ${API_KEY}` } };
  const label = provider === "v1" ? "Iamport" : "PortOne";

  it("POST /billings confirms a key issued in the browser, which the server then charges; an unknown one is 404 naming the provider", async () => {
    const customerUid = uid("web");
    const body = await browserKey(customerUid);
    const r = await h.http.post("/billings", body, MERCHANT);
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "success", card: { customerUid, status: "ACTIVE", cardNumberMasked: expect.stringMatching(/4242$/) } });
    const { card } = await h.client.request<{ card: { billingKey: string | null } }>(CARD, { c: customerUid });
    expect(card.billingKey).toBe(body.billing_key ?? null);
    expect(await charge(customerUid, 7_000)).toMatchObject({ status: "PAID", paidAmount: 7_000 });
    if (provider === "v2") {
      // PortOne's BillingKey.Issued webhook of that key is verified and recorded; nothing acts on it.
      const hook = await waitFor(async () => {
        const [e] = await h.sql<{ outcome: string }>(`select outcome from webhook_events where source = 'portone-webhook' and body->>'billing_key' = ?`, [body.billing_key]);
        return e;
      });
      expect(hook.outcome).toBe("recorded: BillingKey.Issued");
    }
    // Confirming again (no new key) keeps the card as it is.
    expect((await h.http.post("/billings", { customer_uid: customerUid }, MERCHANT)).data).toMatchObject({ status: "success", card: { status: "ACTIVE" } });

    const ghost = uid("ghost");
    const unknown = await h.http.post("/billings", provider === "v1" ? { customer_uid: ghost } : { customer_uid: ghost, billing_key: "billing-key-unknown" }, MERCHANT);
    expect(unknown.status).toBe(404);
    expect(unknown.data).toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining(`at ${label}`) });
    expect(await h.sql(`select 1 from cards where customer_uid = ?`, [ghost])).toHaveLength(0);
  });

  it("POST /billings: billing_key is V2's, and on V2 it must have been issued for the customer", async () => {
    const customerUid = uid("webkey");
    if (provider === "v1") {
      await browserKey(customerUid);
      const r = await h.http.post("/billings", { customer_uid: customerUid, billing_key: "billing-key-x" }, MERCHANT);
      expect(r.status).toBe(400);
      expect(r.data).toMatchObject({ code: "BAD_USER_INPUT", field: "billing_key" });
      return;
    }
    // Without the key the browser was given, there is nothing to confirm.
    const bare = await h.http.post("/billings", { customer_uid: customerUid }, MERCHANT);
    expect(bare.status).toBe(400);
    expect(bare.data).toMatchObject({ code: "BAD_USER_INPUT", field: "billing_key" });
    // A key issued for someone else is not attached to this customer.
    const other = await browserKey(customerUid, GOOD_CARD, uid("someone_else"));
    const r = await h.http.post("/billings", other, MERCHANT);
    expect(r.status).toBe(400);
    expect(r.data).toMatchObject({ code: "BAD_USER_INPUT", field: "billing_key", message: expect.stringContaining("BILLING_KEY_CUSTOMER_MISMATCH") });
    expect(await h.sql(`select 1 from cards where customer_uid = ?`, [customerUid])).toHaveLength(0);
  });

  it("a replacement key confirmed by POST /billings takes the renewal already registered: the new card is charged, here declined", async () => {
    const customerUid = uid("webrep");
    const sub = await startSub(h, { customerUid: await registerCard(h, customerUid), amount: 9_900, interval: "MONTH" });
    expect((await h.http.post("/billings", await browserKey(customerUid, TEST_CARDS.insufficient), MERCHANT)).data).toMatchObject({ status: "success" });
    const ran = await advancePastNextPayment(h, sub);
    expect(ran.executed).toContainEqual(expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2, 1), status: "failed" }));
    expect(await getSub(h, sub.id)).toMatchObject({ status: "PAST_DUE", statusReason: expect.stringMatching(/잔액부족/) });
    await cancelSub(h, sub.id);
  });

  it("refundPayment: a partial refund, then the rest", async () => {
    const customerUid = await registerCard(h, uid("ref"), GOOD_CARD);
    const paid = await charge(customerUid, 10_000);
    const part = (await h.client.request<{ refundPayment: Pay }>(REFUND, { input: { merchantUid: paid.merchantUid, amount: 4_000, reason: "partial" } })).refundPayment;
    expect(part).toMatchObject({ status: "PAID", cancelledAmount: 4_000 });
    const rest = (await h.client.request<{ refundPayment: Pay }>(REFUND, { input: { merchantUid: paid.merchantUid, reason: "the rest" } })).refundPayment;
    expect(rest).toMatchObject({ status: "CANCELLED", cancelledAmount: 10_000 });
  });

  if (provider === "v2") {
    it("the tax-free and VAT parts reach V2's amount object, on a charge and on a schedule", async () => {
      const v2 = h.emulator.v2!;
      const portone = PortOneClient({ secret: v2.apiSecret, baseUrl: v2.url, storeId: v2.storeId });
      const customerUid = await registerCard(h, uid("tax"));
      const paid = (await h.client.request<{ chargeAgain: Pay }>(CHARGE, { input: { customerUid, amount: 11_000, taxFreeAmount: 1_000, vatAmount: 909, name: "Tax" } })).chargeAgain;
      expect(paid.status).toBe("PAID");
      expect(await portone.payment.getPayment({ paymentId: paid.merchantUid })).toMatchObject({ status: "PAID", amount: { total: 11_000, taxFree: 1_000, vat: 909 } });
      const at = new Date(((await emulatorNow(h)) + 86_400) * 1000).toISOString();
      const { schedulePayments } = await h.client.request<{ schedulePayments: Pay[] }>(SCHEDULE, {
        input: { customerUid, schedules: [{ amount: 5_500, taxFreeAmount: 500, name: "Tax later", scheduleAt: at }] },
      });
      const { card } = await h.client.request<{ card: { billingKey: string } }>(CARD, { c: customerUid });
      const { items } = await portone.payment.paymentSchedule.getPaymentSchedules({ filter: { billingKey: card.billingKey } });
      expect(items).toContainEqual(expect.objectContaining({ paymentId: schedulePayments[0].merchantUid, totalAmount: 5_500, taxFreeAmount: 500 }));
      await h.client.request(UNSCHEDULE, { c: customerUid, m: [schedulePayments[0].merchantUid] });
    });

    describe("PortOne V2's signed webhooks on /portone-webhook", () => {
      /** Standard Webhooks' signature, as PortOne makes it (checked against the SDK's Webhook.verify below). */
      function sign(secret: string, id: string, timestamp: number, body: string): string {
        const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
        return `v1,${crypto.createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
      }
      const events = (id: string) => h.sql<{ source: string; outcome: string }>(`select source, outcome from webhook_events where body->>'webhook_id' = ?`, [id]);
      const post = (body: string, headers: Record<string, string>) => h.http.post("/portone-webhook", body, { headers: { "content-type": "application/json", ...headers } });

      it("the emulator's webhook of a charge is verified, recorded and re-queried", async () => {
        const paid = await charge(await registerCard(h, uid("wh")), 2_000);
        const row = await waitFor(async () => {
          const [r] = await h.sql<{ claimed_status: string; outcome: string | null }>(
            `select claimed_status, outcome from webhook_events where source = 'portone-webhook' and merchant_uid = ? and processed_at is not null`,
            [paid.merchantUid],
          );
          return r;
        });
        expect(row).toEqual({ claimed_status: "Transaction.Paid", outcome: expect.stringMatching(/PAID/) });
      });

      it("refuses a bad signature (401) and an old one (401), missing headers (400), and records them", async () => {
        const body = JSON.stringify({ type: "Transaction.Paid", timestamp: new Date().toISOString(), data: { paymentId: "p_x", transactionId: "t_x", storeId: "store-emulator" } });
        const now = Math.floor(Date.now() / 1000);
        const secret = h.emulator.v2!.webhookSecret;
        const forged = await post(body, { "webhook-id": "wh_bad", "webhook-timestamp": String(now), "webhook-signature": sign("whsec_" + Buffer.from("not the secret").toString("base64"), "wh_bad", now, body) });
        expect(forged.status).toBe(401);
        const old = await post(body, { "webhook-id": "wh_old", "webhook-timestamp": String(now - 3600), "webhook-signature": sign(secret, "wh_old", now - 3600, body) });
        expect(old.status).toBe(401);
        const bare = await post(body, { "webhook-id": "wh_bare" });
        expect(bare.status).toBe(400);
        for (const id of ["wh_bad", "wh_old", "wh_bare"]) expect(await events(id)).toEqual([{ source: "portone-webhook", outcome: expect.stringMatching(/^rejected: /) }]);
      });

      it("a cancellation made at PortOne (its console or API) arrives as Transaction.PartialCancelled, then Cancelled, and is re-queried", async () => {
        const paid = await charge(await registerCard(h, uid("ext")), 10_000);
        const v2 = h.emulator.v2!;
        const portone = PortOneClient({ secret: v2.apiSecret, baseUrl: v2.url, storeId: v2.storeId });
        const settled = (type: string) =>
          waitFor(async () => {
            const [r] = await h.sql<{ outcome: string | null }>(
              `select outcome from webhook_events where source = 'portone-webhook' and merchant_uid = ? and claimed_status = ? and processed_at is not null`,
              [paid.merchantUid, type],
            );
            return r;
          });
        await portone.payment.cancelPayment({ paymentId: paid.merchantUid, amount: 3_000, reason: "console", currentCancellableAmount: 10_000 });
        await settled("Transaction.PartialCancelled");
        expect((await h.client.request<{ payment: Pay }>(PAYMENT, { m: paid.merchantUid })).payment).toMatchObject({ status: "PAID", cancelledAmount: 3_000 });
        await portone.payment.cancelPayment({ paymentId: paid.merchantUid, reason: "console", currentCancellableAmount: 7_000 });
        await settled("Transaction.Cancelled");
        expect((await h.client.request<{ payment: Pay }>(PAYMENT, { m: paid.merchantUid })).payment).toMatchObject({ status: "CANCELLED", cancelledAmount: 10_000 });
      });

      it("accepts a signature the SDK accepts; unknown types are recorded and ignored, a paid payment is re-queried", async () => {
        const secret = h.emulator.v2!.webhookSecret;
        const now = Math.floor(Date.now() / 1000);
        const unknown = JSON.stringify({ type: "Transaction.SomethingNew", timestamp: new Date().toISOString(), data: { storeId: "store-emulator" }, extra: 1 });
        const headers = { "webhook-id": "wh_unknown", "webhook-timestamp": String(now), "webhook-signature": sign(secret, "wh_unknown", now, unknown) };
        await expect(Webhook.verify(secret, unknown, headers)).resolves.toBeDefined();
        const r = await post(unknown, headers);
        expect(r.status).toBe(200);
        expect(r.data.status).toBe("ignored");
        expect(await events("wh_unknown")).toEqual([{ source: "portone-webhook", outcome: expect.stringMatching(/^ignored: /) }]);

        // A webhook claiming a payment of an order that was never paid: re-queried, the order stays as it is.
        const customerUid = await registerCard(h, uid("hook"));
        const { preparePayment } = await h.client.request<{ preparePayment: { merchantUid: string } }>(PREPARE, { input: { amount: 1_000, name: "Claim", customerUid } });
        const claim = JSON.stringify({ type: "Transaction.Paid", timestamp: new Date().toISOString(), data: { storeId: "store-emulator", paymentId: preparePayment.merchantUid, transactionId: "t" } });
        const claimed = await post(claim, { "webhook-id": "wh_claim", "webhook-timestamp": String(now), "webhook-signature": sign(secret, "wh_claim", now, claim) });
        expect(claimed.status).toBe(200);
        expect(claimed.data.status).toBe("ignored");
        const { payment } = await h.client.request<{ payment: Pay }>(PAYMENT, { m: preparePayment.merchantUid });
        expect(payment.status).toBe("PENDING");
      });
    });
  }
});

describe("PAYMENT_PROVIDER=v2 without credentials (as npm start)", () => {
  it("serves the in-process emulator's V2 API, whose webhooks reach /portone-webhook, and renews by its clock", async () => {
    const db = await createTestDatabase();
    const config = loadConfig({
      NODE_ENV: "test",
      PORT: "0",
      HOST: "127.0.0.1",
      API_KEYS: API_KEY,
      RECONCILE_INTERVAL_SECONDS: "0",
      PAYMENT_PROVIDER: "v2",
      IAMPORT_EMULATOR_PORT: "0",
      PORTONE_EMULATOR_PORT: "0",
      RATE_LIMIT_PER_MINUTE: "0",
      ...(db ? { DATABASE_URL: db.url } : {}),
    });
    const server = await startServer(config, { logger: createLogger({ level: "silent" }), embeddedInMemory: true });
    try {
      expect(server.portoneUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(server.readyText).toContain(`PortOne V2`);
      const http = axios.create({ baseURL: server.url, validateStatus: () => true, headers: { authorization: `Bearer ${API_KEY}` } });
      const gql = async <T>(query: string, variables: Record<string, unknown>): Promise<T> => {
        const r = await http.post("/graphql", { query, variables });
        if (r.data.errors) throw new Error(JSON.stringify(r.data.errors));
        return r.data.data as T;
      };
      expect((await http.get("/readyz")).data.checks).toMatchObject({ portone: "ok" });
      const customerUid = uid("start");
      await gql(`mutation($c: String!) { registerCard(input: {customerUid: $c, cardNumber: "${GOOD_CARD}", expiry: "2031-12", birth: "880101"}) { status } }`, { c: customerUid });
      const { startSubscription: sub } = await gql<{ startSubscription: { id: string; nextPaymentAt: string } }>(
        `mutation($c: String!) { startSubscription(input: {customerUid: $c, name: "Plan", amount: 9900, interval: MONTH}) { id nextPaymentAt } }`,
        { c: customerUid },
      );
      const emu = axios.create({ baseURL: server.emulatorUrl, validateStatus: () => true });
      const now = (await emu.get("/__emulator/clock")).data.now as number;
      const ran = await emu.post("/__emulator/clock/advance", { seconds: Math.floor(Date.parse(sub.nextPaymentAt) / 1000) + 10 - now });
      expect(ran.data.executed).toContainEqual(expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2), status: "paid" }));
      const events = await server.orm.em
        .fork()
        .getConnection()
        .execute<{ outcome: string }[]>(`select outcome from webhook_events where source = 'portone-webhook' and merchant_uid = ?`, [renewalUid(sub.id, 2)]);
      expect(events).toContainEqual({ outcome: "PAID" });
    } finally {
      await server.close();
      await db?.drop();
    }
  });
});
