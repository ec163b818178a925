import crypto from "node:crypto";
import { mintCustomerToken } from "../../src/security/customer-token";
import { API_KEY, Harness, registerCard, startHarness, uid } from "../support/harness";

/**
 * Every cell of docs/security.md's "Who may call what" table: each operation with
 * each kind of caller. Customer tokens act only on their own customer.
 */
const SECRET = "authz-test-secret-0123456789abcdefghijklmnop";
const SHA_KEY = "hashed-merchant-key";

let h: Harness;
interface Fixture {
  customerUid: string;
  merchantUid: string;
  impUid: string;
  subscriptionId: string;
  /** A subscription in a free trial (consent may be given to it). */
  trialId: string;
  /** A price increase waiting for the customer's answer (declining it again changes nothing). */
  priceChangeId: string;
  /** The card.registered event of the fixture's card. */
  eventId: string;
}
let own: Fixture;
let other: Fixture;
let ownToken: string;

async function fixture(prefix: string): Promise<Fixture> {
  const customerUid = await registerCard(h, uid(prefix));
  const charge = await h.client.request<{ chargeAgain: { merchantUid: string; impUid: string } }>(
    `mutation($c: String!) { chargeAgain(input: {customerUid: $c, amount: 1000, name: "fixture"}) { merchantUid impUid } }`,
    { c: customerUid },
  );
  const sub = await h.client.request<{ startSubscription: { id: string } }>(
    `mutation($c: String!) { startSubscription(input: {customerUid: $c, name: "plan", amount: 500, interval: MONTH}) { id } }`,
    { c: customerUid },
  );
  const trial = await h.client.request<{ startSubscription: { id: string } }>(
    `mutation($c: String!) { startSubscription(input: {customerUid: $c, name: "trial", amount: 500, interval: MONTH, trialDays: 10}) { id } }`,
    { c: customerUid },
  );
  const priced = await h.client.request<{ startSubscription: { id: string } }>(
    `mutation($c: String!) { startSubscription(input: {customerUid: $c, name: "priced", amount: 500, interval: MONTH}) { id } }`,
    { c: customerUid },
  );
  const change = await h.client.request<{ requestPriceChange: { id: string } }>(
    `mutation($s: ID!) { requestPriceChange(input: {subscriptionId: $s, newAmount: 700}) { id } }`,
    { s: priced.startSubscription.id },
  );
  const events = await h.client.request<{ events: { nodes: { id: string }[] } }>(`query($c: String) { events(customerUid: $c, type: "card.registered") { nodes { id } } }`, {
    c: customerUid,
  });
  return { customerUid, ...charge.chargeAgain, subscriptionId: sub.startSubscription.id, trialId: trial.startSubscription.id, priceChangeId: change.requestPriceChange.id, eventId: events.events.nodes[0].id };
}

beforeAll(async () => {
  const digest = crypto.createHash("sha256").update(SHA_KEY).digest("hex");
  h = await startHarness({
    env: { API_KEYS: `${API_KEY},sha256:${digest}`, CUSTOMER_TOKEN_SECRET: SECRET, RATE_LIMIT_PER_MINUTE: "0", RATE_LIMIT_PUBLIC_PER_MINUTE: "0" },
  });
  own = await fixture("own");
  other = await fixture("other");
  ownToken = mintCustomerToken(SECRET, own.customerUid, 600);
});
afterAll(async () => {
  await h?.close();
});

type Op = {
  name: string;
  customer: "own" | "merchant-only";
  query: string;
  vars: (f: Fixture) => Record<string, unknown>;
  /** Restores what a previous allowed call consumed (a deleted card). */
  before?: (f: Fixture) => Promise<unknown>;
};

/** The subscription made by requestPriceChange's `before`. */
let pricedSubscriptionId = "";
/** The change made by withdrawPriceChange's `before`. */
let withdrawnChangeId = "";
/** The endpoint made by the endpoint operations' `before` (one that takes no event this test records). */
let endpointId = "";
/** A fresh subscription of each fixture customer: pause and resume change the one they are given. */
const fresh = new Map<string, string>();
const startFresh = async (f: Fixture, paused = false) => {
  const r = await h.client.request<{ startSubscription: { id: string } }>(
    `mutation($c: String!) { startSubscription(input: {customerUid: $c, name: "fresh", amount: 300, interval: MONTH, allowDuplicate: true}) { id } }`,
    { c: f.customerUid },
  );
  fresh.set(f.customerUid, r.startSubscription.id);
  if (paused) await h.client.request(`mutation($id: ID!) { pauseSubscription(id: $id) { id } }`, { id: r.startSubscription.id });
};
const freshId = (f: Fixture) => ({ id: fresh.get(f.customerUid) ?? f.subscriptionId });
const makeEndpoint = async () => {
  const r = await h.client.request<{ createWebhookEndpoint: { endpoint: { id: string } } }>(
    `mutation { createWebhookEndpoint(url: "http://127.0.0.1:9/hook", eventTypes: ["payment.forgery_suspected"]) { endpoint { id } } }`,
  );
  endpointId = r.createWebhookEndpoint.endpoint.id;
};
const future = () => new Date(Date.now() + 86400_000).toISOString();
/** The latest schedule made for each customer by unschedulePayments' `before`. */
const scheduled = new Map<string, string>();
const OPS: Op[] = [
  { name: "card", customer: "own", query: `query($c: String!) { card(customerUid: $c) { customerUid } }`, vars: (f) => ({ c: f.customerUid }) },
  { name: "payment", customer: "own", query: `query($m: String) { payment(merchantUid: $m) { merchantUid } }`, vars: (f) => ({ m: f.merchantUid }) },
  { name: "payments", customer: "own", query: `query($c: String) { payments(customerUid: $c) { nodes { merchantUid customerUid } } }`, vars: (f) => ({ c: f.customerUid }) },
  { name: "subscription", customer: "own", query: `query($id: ID!) { subscription(id: $id) { id } }`, vars: (f) => ({ id: f.subscriptionId }) },
  { name: "subscriptions", customer: "own", query: `query($c: String) { subscriptions(customerUid: $c) { nodes { id } } }`, vars: (f) => ({ c: f.customerUid }) },
  {
    name: "registerCard",
    customer: "own",
    // The fixture's customers have an active card: registering again is a replacement, which says so.
    query: `mutation($c: String!) { registerCard(input: {customerUid: $c, cardNumber: "4242424242424242", expiry: "2031-01", birth: "900101", replace: true}) { customerUid } }`,
    vars: (f) => ({ c: f.customerUid }),
  },
  {
    name: "startSubscription",
    customer: "own",
    // Started once per caller tried: allowDuplicate, or the second would be refused as a duplicate.
    query: `mutation($c: String!, $at: DateTime) { startSubscription(input: {customerUid: $c, name: "p", amount: 100, interval: DAY, startAt: $at, allowDuplicate: true}) { id } }`,
    vars: (f) => ({ c: f.customerUid, at: future() }),
  },
  {
    name: "cancelSubscription",
    customer: "own",
    query: `mutation($id: ID!) { cancelSubscription(input: {id: $id, atPeriodEnd: true}) { id } }`,
    vars: (f) => ({ id: f.subscriptionId }),
  },
  {
    name: "chargeAgain",
    customer: "merchant-only",
    query: `mutation($c: String!) { chargeAgain(input: {customerUid: $c, amount: 100, name: "x"}) { status } }`,
    vars: (f) => ({ c: f.customerUid }),
  },
  {
    name: "schedulePayments",
    customer: "merchant-only",
    query: `mutation($c: String!, $at: DateTime!) { schedulePayments(input: {customerUid: $c, schedules: [{scheduleAt: $at, amount: 100, name: "s"}]}) { status } }`,
    vars: (f) => ({ c: f.customerUid, at: future() }),
  },
  {
    name: "unschedulePayments",
    customer: "merchant-only",
    query: `mutation($c: String!, $m: String!) { unschedulePayments(customerUid: $c, merchantUids: [$m]) { status } }`,
    vars: (f) => ({ c: f.customerUid, m: scheduled.get(f.customerUid) ?? "none_scheduled" }),
    // A real schedule to revoke, so that "allowed" is a revoked schedule and not NOT_FOUND.
    before: async (f) => {
      const m = uid("sched");
      await h.client.request(`mutation($c: String!, $m: String!) { schedulePayments(input: {customerUid: $c, schedules: [{merchantUid: $m, scheduleAt: "2031-01-01T00:00:00+09:00", amount: 1000, name: "authz"}]}) { status } }`, {
        c: f.customerUid,
        m,
      });
      scheduled.set(f.customerUid, m);
    },
  },
  {
    name: "preparePayment",
    customer: "merchant-only",
    query: `mutation($m: String!) { preparePayment(input: {amount: 100, name: "o", merchantUid: $m}) { status } }`,
    vars: () => ({ m: uid("prep") }),
  },
  {
    name: "verifyPayment",
    customer: "merchant-only",
    query: `mutation($i: String!) { verifyPayment(input: {impUid: $i}) { outcome } }`,
    vars: (f) => ({ i: f.impUid }),
  },
  {
    name: "refundPayment",
    customer: "merchant-only",
    query: `mutation($m: String!) { refundPayment(input: {merchantUid: $m, amount: 1, reason: "authz"}) { status } }`,
    vars: (f) => ({ m: f.merchantUid }),
  },
  {
    name: "createCustomerToken",
    customer: "merchant-only",
    query: `mutation($c: String!) { createCustomerToken(customerUid: $c, ttlSeconds: 60) { token } }`,
    vars: (f) => ({ c: f.customerUid }),
  },
  {
    name: "consentToTrialConversion",
    customer: "own",
    // Consenting again changes nothing: every allowed call answers the trial.
    query: `mutation($id: ID!) { consentToTrialConversion(subscriptionId: $id) { id } }`,
    vars: (f) => ({ id: f.trialId }),
  },
  {
    name: "respondToPriceChange",
    customer: "own",
    query: `mutation($id: ID!) { respondToPriceChange(id: $id, accept: false) { id status } }`,
    vars: (f) => ({ id: f.priceChangeId }),
  },
  {
    name: "requestPriceChange",
    customer: "merchant-only",
    query: `mutation($s: ID!) { requestPriceChange(input: {subscriptionId: $s, newAmount: 900}) { id } }`,
    vars: () => ({ s: pricedSubscriptionId }),
    // One change in flight per subscription: each call gets a subscription of its own.
    before: async (f) => {
      const r = await h.client.request<{ startSubscription: { id: string } }>(
        `mutation($c: String!) { startSubscription(input: {customerUid: $c, name: "p", amount: 500, interval: MONTH, allowDuplicate: true}) { id } }`,
        { c: f.customerUid },
      );
      pricedSubscriptionId = r.startSubscription.id;
    },
  },
  {
    name: "withdrawPriceChange",
    customer: "merchant-only",
    query: `mutation($id: ID!) { withdrawPriceChange(id: $id) { id status } }`,
    vars: () => ({ id: withdrawnChangeId }),
    // A change of its own, waiting for an answer, for each call (withdrawing one again answers it as it is).
    before: async (f) => {
      const sub = await h.client.request<{ startSubscription: { id: string } }>(
        `mutation($c: String!) { startSubscription(input: {customerUid: $c, name: "w", amount: 500, interval: MONTH, allowDuplicate: true}) { id } }`,
        { c: f.customerUid },
      );
      const r = await h.client.request<{ requestPriceChange: { id: string } }>(`mutation($s: ID!) { requestPriceChange(input: {subscriptionId: $s, newAmount: 900}) { id } }`, {
        s: sub.startSubscription.id,
      });
      withdrawnChangeId = r.requestPriceChange.id;
    },
  },
  {
    name: "createPlan",
    customer: "merchant-only",
    query: `mutation($code: String!) { createPlan(input: {code: $code, name: "authz", amount: 1000, interval: MONTH}) { code } }`,
    vars: () => ({ code: uid("plan") }),
  },
  {
    name: "archivePlan",
    customer: "merchant-only",
    query: `mutation($code: String!) { archivePlan(code: $code) { code } }`,
    vars: () => ({ code: "authz-archived" }),
    // Archiving is idempotent: the plan is created once, and each allowed call archives it again.
    before: async () => {
      const r = await h.gql(`{ plan(code: "authz-archived") { code } }`);
      if (!(r.data as { plan: unknown } | undefined)?.plan) {
        await h.client.request(`mutation { createPlan(input: {code: "authz-archived", name: "a", amount: 1000, interval: MONTH}) { code } }`);
      }
    },
  },
  { name: "events", customer: "own", query: `query($c: String) { events(customerUid: $c) { nodes { id } } }`, vars: (f) => ({ c: f.customerUid }) },
  { name: "event", customer: "own", query: `query($id: ID!) { event(id: $id) { id } }`, vars: (f) => ({ id: f.eventId }) },
  { name: "webhookEndpoints", customer: "merchant-only", query: `{ webhookEndpoints { id } }`, vars: () => ({}) },
  { name: "eventDeliveries", customer: "merchant-only", query: `query($id: ID!) { eventDeliveries(eventId: $id) { id } }`, vars: (f) => ({ id: f.eventId }) },
  {
    name: "createWebhookEndpoint",
    customer: "merchant-only",
    query: `mutation { createWebhookEndpoint(url: "http://127.0.0.1:9/hook", eventTypes: ["payment.forgery_suspected"]) { secret } }`,
    vars: () => ({}),
  },
  {
    name: "updateWebhookEndpoint",
    customer: "merchant-only",
    query: `mutation($id: ID!) { updateWebhookEndpoint(id: $id, enabled: false) { id } }`,
    vars: () => ({ id: endpointId }),
    before: makeEndpoint,
  },
  {
    name: "rotateWebhookEndpointSecret",
    customer: "merchant-only",
    query: `mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { secret } }`,
    vars: () => ({ id: endpointId }),
    before: makeEndpoint,
  },
  {
    name: "deleteWebhookEndpoint",
    customer: "merchant-only",
    query: `mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }`,
    vars: () => ({ id: endpointId }),
    before: makeEndpoint,
  },
  { name: "redeliverEvent", customer: "merchant-only", query: `mutation($id: ID!) { redeliverEvent(id: $id) { id } }`, vars: (f) => ({ id: f.eventId }) },
  { name: "cancellationPreview", customer: "own", query: `query($id: ID!) { cancellationPreview(id: $id) { periodDays } }`, vars: (f) => ({ id: f.subscriptionId }) },
  {
    name: "retrySubscriptionPayment",
    customer: "own",
    // ACTIVE: answered as it is, nothing charged.
    query: `mutation($id: ID!) { retrySubscriptionPayment(id: $id) { id } }`,
    vars: (f) => ({ id: f.subscriptionId }),
  },
  {
    name: "changeSubscriptionPlan",
    customer: "own",
    // A fresh subscription moved to a cheaper plan of its interval (NEXT_PERIOD): a downgrade, open to both callers.
    query: `mutation($id: ID!, $p: String!) { changeSubscriptionPlan(input: {id: $id, planCode: $p}) { id } }`,
    vars: (f) => ({ id: fresh.get(f.customerUid) ?? f.subscriptionId, p: "authz-monthly" }),
    before: async (f) => {
      await h.gql(`mutation { createPlan(input: {code: "authz-monthly", name: "authz", amount: 200, interval: MONTH}) { code } }`, {}, { authorization: `Bearer ${API_KEY}` });
      await startFresh(f);
    },
  },
  { name: "pauseSubscription", customer: "own", query: `mutation($id: ID!) { pauseSubscription(id: $id) { id } }`, vars: freshId, before: (f) => startFresh(f) },
  {
    name: "resumeSubscription",
    customer: "own",
    query: `mutation($id: ID!) { resumeSubscription(id: $id) { id } }`,
    vars: freshId,
    before: (f) => startFresh(f, true),
  },
  {
    name: "deleteCard",
    customer: "own",
    // The fixture's subscription is live: deleting its card cancels it (deleteCard alone answers CONFLICT).
    query: `mutation($c: String!) { deleteCard(customerUid: $c, cancelSubscriptions: true) { status } }`,
    vars: (f) => ({ c: f.customerUid }),
    before: (f) => registerCard(h, f.customerUid, undefined, { replace: true }),
  },
];

const codes = (r: { errors?: { extensions?: { code?: string } }[] }) => (r.errors ?? []).map((e) => e.extensions?.code);

describe.each(OPS.map((op) => [op.name, op] as const))("%s", (_name, op) => {
  it("refuses anonymous, wrong-key, expired and tampered callers with UNAUTHENTICATED", async () => {
    const expired = mintCustomerToken(SECRET, own.customerUid, 60, Math.floor(Date.now() / 1000) - 3600);
    const tampered = ownToken.slice(0, -2) + (ownToken.endsWith("AA") ? "BB" : "AA");
    const forged = mintCustomerToken("another-secret-0123456789abcdefghijklmnop", own.customerUid, 600);
    for (const authorization of ["", "Bearer wrong-key", `Bearer ${expired}`, `Bearer ${tampered}`, `Bearer ${forged}`, API_KEY]) {
      const r = await h.gql(op.query, op.vars(own), { authorization });
      expect({ authorization, status: r.status, codes: codes(r) }).toEqual({ authorization, status: 401, codes: ["UNAUTHENTICATED"] });
    }
  });

  it.each([
    ["plain merchant key", () => `Bearer ${API_KEY}`],
    ["sha256-configured merchant key", () => `Bearer ${SHA_KEY}`],
  ])("is allowed with a %s", async (_k, auth) => {
    await op.before?.(own);
    const r = await h.gql(op.query, op.vars(own), { authorization: auth() });
    // Allowed means answered: no error of any kind (an INTERNAL_SERVER_ERROR is not "allowed"), and data.
    expect({ status: r.status, codes: codes(r) }).toEqual({ status: 200, codes: [] });
    expect(r.data?.[op.name]).toBeTruthy();
  });

  it(`with the customer's own token is ${op.customer === "own" ? "allowed" : "FORBIDDEN"}`, async () => {
    await op.before?.(own);
    const r = await h.gql(op.query, op.vars(own), { authorization: `Bearer ${ownToken}` });
    if (op.customer === "own") {
      expect(codes(r)).toEqual([]);
      expect(r.data?.[op.name]).toBeTruthy();
    } else {
      expect(codes(r)).toEqual(["FORBIDDEN"]);
    }
  });

  it("with a token for another customer is FORBIDDEN", async () => {
    await op.before?.(other);
    const r = await h.gql(op.query, op.vars(other), { authorization: `Bearer ${ownToken}` });
    expect(codes(r)).toEqual(["FORBIDDEN"]);
  });
});

describe("customer token scoping of lists", () => {
  it("omitting customerUid lists only the token's own payments and subscriptions", async () => {
    const r = await h.gql<{ payments: { nodes: { customerUid: string }[] }; subscriptions: { nodes: { id: string }[] } }>(
      `{ payments(first: 100) { nodes { customerUid } } subscriptions(first: 100) { nodes { id } } }`,
      {},
      { authorization: `Bearer ${ownToken}` },
    );
    expect(r.errors).toBeUndefined();
    expect(r.data!.payments.nodes.length).toBeGreaterThan(0);
    expect(new Set(r.data!.payments.nodes.map((n) => n.customerUid))).toEqual(new Set([own.customerUid]));
    expect(r.data!.subscriptions.nodes.map((n) => n.id)).not.toContain(other.subscriptionId);
  });

  it("filtering payments by another customer's subscription is FORBIDDEN", async () => {
    const r = await h.gql(`query($s: ID) { payments(subscriptionId: $s) { nodes { merchantUid } } }`, { s: other.subscriptionId }, {
      authorization: `Bearer ${ownToken}`,
    });
    expect(codes(r)).toEqual(["FORBIDDEN"]);
  });

  it("a token minted through createCustomerToken works for its customer", async () => {
    const minted = await h.client.request<{ createCustomerToken: { token: string; customerUid: string; expiresAt: string } }>(
      `mutation($c: String!) { createCustomerToken(customerUid: $c, ttlSeconds: 120) { token customerUid expiresAt } }`,
      { c: own.customerUid },
    );
    expect(minted.createCustomerToken.customerUid).toBe(own.customerUid);
    const r = await h.gql(`query($c: String!) { card(customerUid: $c) { customerUid } }`, { c: own.customerUid }, {
      authorization: `Bearer ${minted.createCustomerToken.token}`,
    });
    expect(r.data).toEqual({ card: { customerUid: own.customerUid } });
    const bad = await h.gql(`mutation { createCustomerToken(customerUid: "x", ttlSeconds: 999999) { token } }`);
    expect(bad.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "ttlSeconds" });
  });
});
