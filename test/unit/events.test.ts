import "reflect-metadata";
import type { GraphQLObjectType } from "graphql";
import { Webhook } from "standardwebhooks";
import { Card, Payment, Subscription } from "../../src/db/entities";
import { cardData, paymentData, subscriptionData } from "../../src/events/present";
import { buildBillingSchema } from "../../src/graphql/schema";
import { PaymentStatus, SubscriptionStatus } from "../../src/db/entities/enums";
import { nextDelaySeconds } from "../../src/events/delivery";
import { paymentEventTypes, subscriptionEventTypes } from "../../src/events/mapping";
import { newSecret, signatureHeaders } from "../../src/events/signing";
import { checkEndpointUrl, isPrivateAddress } from "../../src/events/ssrf";
import { EVENT_TYPES } from "../../src/events/types";

const sub = (status: SubscriptionStatus, currentPeriod = 1, cancelAtPeriodEnd = false) => ({ status, currentPeriod, cancelAtPeriodEnd });
const pay = (status: PaymentStatus, cancelledAmount = 0) => ({ status, cancelledAmount });

describe("event types of a subscription's change", () => {
  it.each([
    ["first payment of a new subscription", null, sub(SubscriptionStatus.ACTIVE, 1), ["subscription.started"]],
    ["first payment after INCOMPLETE", sub(SubscriptionStatus.INCOMPLETE, 0), sub(SubscriptionStatus.ACTIVE, 1), ["subscription.started"]],
    ["a renewal paid", sub(SubscriptionStatus.ACTIVE, 3), sub(SubscriptionStatus.ACTIVE, 4), ["subscription.renewed"]],
    ["a renewal declined", sub(SubscriptionStatus.ACTIVE, 3), sub(SubscriptionStatus.PAST_DUE, 3), ["subscription.past_due"]],
    ["a retry paid", sub(SubscriptionStatus.PAST_DUE, 3), sub(SubscriptionStatus.ACTIVE, 4), ["subscription.recovered"]],
    ["a retry declined again", sub(SubscriptionStatus.PAST_DUE, 3), sub(SubscriptionStatus.PAST_DUE, 3), []],
    ["retries exhausted", sub(SubscriptionStatus.PAST_DUE, 3), sub(SubscriptionStatus.UNPAID, 3), ["subscription.unpaid"]],
    ["canceled now", sub(SubscriptionStatus.ACTIVE, 3), sub(SubscriptionStatus.CANCELED, 3), ["subscription.canceled"]],
    ["cancel at period end", sub(SubscriptionStatus.ACTIVE, 3), sub(SubscriptionStatus.ACTIVE, 3, true), ["subscription.cancel_scheduled"]],
    ["the scheduled cancellation takes effect", sub(SubscriptionStatus.ACTIVE, 3, true), sub(SubscriptionStatus.CANCELED, 3, true), ["subscription.canceled"]],
    ["nothing changed", sub(SubscriptionStatus.ACTIVE, 3), sub(SubscriptionStatus.ACTIVE, 3), []],
    ["created INCOMPLETE (first charge pending)", null, sub(SubscriptionStatus.INCOMPLETE, 0), []],
  ] as const)("%s", (_name, before, after, expected) => {
    expect(subscriptionEventTypes(before, after)).toEqual(expected);
  });
});

describe("event types of a payment's change", () => {
  it.each([
    ["paid", pay(PaymentStatus.PENDING), pay(PaymentStatus.PAID), ["payment.paid"]],
    ["paid when first seen", null, pay(PaymentStatus.PAID), ["payment.paid"]],
    ["declined", pay(PaymentStatus.SCHEDULED), pay(PaymentStatus.FAILED), ["payment.failed"]],
    ["forged amount", pay(PaymentStatus.PENDING), pay(PaymentStatus.FORGERY_SUSPECTED), ["payment.forgery_suspected"]],
    ["a late webhook repeating PAID", pay(PaymentStatus.PAID), pay(PaymentStatus.PAID), []],
    ["a partial refund", pay(PaymentStatus.PAID), pay(PaymentStatus.PAID, 3000), ["payment.refunded"]],
    ["a second partial refund", pay(PaymentStatus.PAID, 3000), pay(PaymentStatus.PAID, 5000), ["payment.refunded"]],
    ["the full refund", pay(PaymentStatus.PAID, 3000), pay(PaymentStatus.CANCELLED, 9900), ["payment.refunded"]],
  ] as const)("%s", (_name, before, after, expected) => {
    expect(paymentEventTypes(before, after)).toEqual(expected);
  });

  it("names only types of the one list", () => {
    const all = [
      ...paymentEventTypes(null, pay(PaymentStatus.PAID, 10)),
      ...subscriptionEventTypes(sub(SubscriptionStatus.PAST_DUE), sub(SubscriptionStatus.ACTIVE, 2, true)),
    ];
    for (const t of all) expect(EVENT_TYPES).toContain(t);
  });
});

describe("retry schedule", () => {
  const schedule = [60, 300, 1800, 7200, 21600, 43200, 43200];

  it("waits the scheduled time, jittered by at most 20%, then gives up", () => {
    expect(nextDelaySeconds(schedule, 1, () => 0)).toBe(48);
    expect(nextDelaySeconds(schedule, 1, () => 0.5)).toBe(60);
    expect(nextDelaySeconds(schedule, 2, () => 0.999)).toBe(360);
    expect(nextDelaySeconds(schedule, 7, () => 0.5)).toBe(43200);
    expect(nextDelaySeconds(schedule, 8, () => 0.5)).toBeNull();
  });

  it("keeps retrying for at least 24 hours by default, even with the shortest jitter", () => {
    const shortest = schedule.reduce((sum, _s, i) => sum + nextDelaySeconds(schedule, i + 1, () => 0)!, 0);
    expect(shortest).toBeGreaterThanOrEqual(24 * 3600);
  });
});

describe("signatures", () => {
  it("are what the standardwebhooks package verifies, for every secret given", () => {
    const [a, b] = [newSecret(), newSecret()];
    const body = JSON.stringify({ type: "payment.paid", data: { name: "월간 구독 플랜", amount: 9900 } });
    const ts = Math.floor(Date.now() / 1000);
    const headers = signatureHeaders("evt_1", ts, body, [a, b]);
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/=]+ v1,[A-Za-z0-9+/=]+$/);
    expect(new Webhook(a).verify(body, headers)).toEqual(JSON.parse(body));
    expect(new Webhook(b).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(newSecret()).verify(body, headers)).toThrow();
  });
});

describe("endpoint URLs (SSRF)", () => {
  it.each(["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1"])(
    "%s is private",
    (ip) => expect(isPrivateAddress(ip)).toBe(true),
  );

  it.each(["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])("%s is public", (ip) => expect(isPrivateAddress(ip)).toBe(false));

  it("refuses private, loopback and link-local hosts and plain http unless private URLs are allowed", () => {
    for (const url of ["https://127.0.0.1/x", "https://localhost/x", "https://169.254.169.254/latest/meta-data", "https://[::1]/x", "https://10.0.0.5/hook"]) {
      expect(() => checkEndpointUrl(url, false)).toThrow(/private, loopback or link-local/);
    }
    expect(() => checkEndpointUrl("http://example.com/hook", false)).toThrow(/must be https/);
    expect(() => checkEndpointUrl("http://example.com/hook", true)).toThrow(/must be https/);
    expect(checkEndpointUrl("https://example.com/hook", false)).toBe("https://example.com/hook");
    expect(checkEndpointUrl("http://localhost:3000/hook", true)).toBe("http://localhost:3000/hook");
    expect(() => checkEndpointUrl("https://user:pw@example.com/hook", false)).toThrow(/credentials/);
  });
});

describe("event data", () => {
  const fieldsOf = (type: string) => Object.keys((buildBillingSchema().getType(type) as GraphQLObjectType).getFields());

  it("is the object as the API shows it: only fields of the GraphQL type (a payment's subscription by id)", () => {
    const card = Object.assign(new Card(), { customerUid: "c1", cardNumberMasked: "424242******4242" });
    expect(fieldsOf("Card")).toEqual(expect.arrayContaining(Object.keys(cardData(card))));
    const sub = Object.assign(new Subscription(), { id: "s1", customerUid: "c1", name: "월간 플랜", amount: 9900 });
    expect(fieldsOf("Subscription")).toEqual(expect.arrayContaining(Object.keys(subscriptionData(sub))));
    const payment = Object.assign(new Payment(), { merchantUid: "m1", name: "월간 플랜", amount: 9900, createdAt: new Date(), updatedAt: new Date() });
    expect([...fieldsOf("Payment"), "subscriptionId"]).toEqual(expect.arrayContaining(Object.keys(paymentData(payment, "s1"))));
  });
});
