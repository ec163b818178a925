import { Webhook } from "standardwebhooks";
import { query } from "../../src/db/tx";
import { recordEvent } from "../../src/events/record";
import { registerCard, startHarness, uid, type Harness } from "../support/harness";
import { createEndpoint, deliveriesOf, eventually, startReceiver, type Receiver } from "./helpers";

/*
 * Webhooks out: each event is POSTed to the merchant's endpoints, signed as
 * Standard Webhooks and verified here with the `standardwebhooks` package
 * (not this server's code), retried on failures with the configured schedule
 * (a fast one here), redelivered on request, and signed with both secrets
 * while a rotated one still counts.
 */

let h: Harness;
const receivers: Receiver[] = [];
const endpoints: string[] = [];

beforeAll(async () => {
  h = await startHarness({ env: { EVENT_RETRY_SCHEDULE: "1s,1s,1s", EVENT_DELIVERY_TIMEOUT_MS: "5000" } });
});

afterEach(async () => {
  // Each test has its own endpoint: the next test's events do not go to this one.
  for (const id of endpoints.splice(0)) await h.client.request(`mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }`, { id });
  for (const r of receivers.splice(0)) await r.close();
});

afterAll(async () => {
  await h?.close();
});

async function endpointFor(receiver: Receiver, eventTypes?: string[]): Promise<{ id: string; secret: string }> {
  receivers.push(receiver);
  const e = await createEndpoint(h, receiver.url, eventTypes);
  endpoints.push(e.id);
  return e;
}

const EVENTS = /* GraphQL */ `
  query Events($customerUid: String, $type: String) { events(customerUid: $customerUid, type: $type) { nodes { id type customerUid data createdAt } } }
`;

describe("webhooks to the merchant", () => {
  it("are signed as Standard Webhooks: the standardwebhooks package verifies them, Korean text included, and they carry no card data", async () => {
    const receiver = await startReceiver();
    const { secret } = await endpointFor(receiver);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]{32,}$/);
    const customerUid = await registerCard(h, uid("signed"));
    const [r] = await receiver.waitFor((all) => all.some((x) => x.json.customerUid === customerUid));

    const payload = new Webhook(secret).verify(r.body, r.headers) as { id: string; type: string; data: { cardName: string; status: string } };
    expect(payload.type).toBe("card.registered");
    expect(payload.id).toBe(r.headers["webhook-id"]);
    // The emulator's issuers are Korean (e.g. "BC카드"): signed over the UTF-8 bytes of the body.
    expect(payload.data.cardName).toMatch(/카드/);
    expect(payload.data.status).toBe("ACTIVE");
    // A tampered body or another secret does not verify (the check above is not vacuous).
    expect(() => new Webhook(secret).verify(r.body.replace("ACTIVE", "DELETED"), r.headers)).toThrow();
    expect(() => new Webhook(`whsec_${Buffer.alloc(24, 7).toString("base64")}`).verify(r.body, r.headers)).toThrow();
    // Card number, expiry, birth and password never leave the server.
    for (const secretText of ["4242424242424242", "4242-4242-4242-4242", "2031-12", "880101"]) expect(r.body).not.toContain(secretText);

    // The same event in the ledger, under the same id.
    const listed = await h.client.request<{ events: { nodes: { id: string; type: string; data: { cardName: string } }[] } }>(EVENTS, { customerUid });
    expect(listed.events.nodes.map((e) => [e.id, e.type])).toEqual([[payload.id, "card.registered"]]);
    const [delivery] = await eventually(() => deliveriesOf(h, payload.id), (d) => d[0]?.status === "DELIVERED");
    expect(delivery).toMatchObject({ attempts: 1, lastStatusCode: 200, nextAttemptAt: null });
  });

  it("are retried after a 500 and after a timeout, then delivered", async () => {
    const receiver = await startReceiver((n) => (n === 0 ? 500 : n === 1 ? "hang" : 200));
    await endpointFor(receiver);
    const customerUid = await registerCard(h, uid("retried"));
    const received = await receiver.waitFor((all) => all.length >= 3);
    // The same event each time: one webhook-id, re-signed per attempt.
    expect(new Set(received.map((r) => r.headers["webhook-id"])).size).toBe(1);
    expect(received.every((r) => r.json.customerUid === customerUid)).toBe(true);
    const [delivery] = await eventually(() => deliveriesOf(h, received[0].json.id), (d) => d[0]?.status === "DELIVERED");
    expect(delivery).toMatchObject({ attempts: 3, lastStatusCode: 200, lastError: null });
    expect(receiver.received).toHaveLength(3);
  });

  it("are FAILED once the retry schedule is exhausted, with the endpoint's last answer", async () => {
    const receiver = await startReceiver(() => 503);
    await endpointFor(receiver);
    await registerCard(h, uid("failing"));
    const [first] = await receiver.waitFor((all) => all.length >= 1);
    const [delivery] = await eventually(() => deliveriesOf(h, first.json.id), (d) => d[0]?.status === "FAILED");
    // The first attempt and one per scheduled retry ("1s,1s,1s").
    expect(delivery).toMatchObject({ attempts: 4, lastStatusCode: 503, nextAttemptAt: null, deliveredAt: null });
    expect(delivery.lastError).toMatch(/HTTP 503/);
    expect(receiver.received).toHaveLength(4);
  });

  it("are sent again by redeliverEvent, with the same webhook-id", async () => {
    const receiver = await startReceiver();
    const { id: endpointId } = await endpointFor(receiver);
    await registerCard(h, uid("again"));
    const [first] = await receiver.waitFor((all) => all.length >= 1);
    await eventually(() => deliveriesOf(h, first.json.id), (d) => d[0]?.status === "DELIVERED");

    const r = await h.client.request<{ redeliverEvent: { endpointId: string; status: string }[] }>(
      `mutation($id: ID!, $endpointId: ID) { redeliverEvent(id: $id, endpointId: $endpointId) { endpointId status } }`,
      { id: first.json.id, endpointId },
    );
    expect(r.redeliverEvent).toEqual([{ endpointId, status: "PENDING" }]);
    const [, again] = await receiver.waitFor((all) => all.length >= 2);
    expect(again.headers["webhook-id"]).toBe(first.headers["webhook-id"]);
    expect(again.body).toBe(first.body);
    const [delivery] = await eventually(() => deliveriesOf(h, first.json.id), (d) => d[0]?.status === "DELIVERED");
    expect(delivery.attempts).toBe(2);
  });

  it("are signed with the old and the new secret for a day after rotateWebhookEndpointSecret", async () => {
    const receiver = await startReceiver();
    const { id, secret: oldSecret } = await endpointFor(receiver);
    const rotated = await h.client.request<{ rotateWebhookEndpointSecret: { secret: string; endpoint: { id: string } } }>(
      `mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { secret endpoint { id } } }`,
      { id },
    );
    const newSecret = rotated.rotateWebhookEndpointSecret.secret;
    expect(newSecret).not.toBe(oldSecret);
    await registerCard(h, uid("rotated"));
    const [r] = await receiver.waitFor((all) => all.length >= 1);
    expect(r.headers["webhook-signature"].split(" ")).toHaveLength(2);
    // A receiver still configured with the old secret and one already on the new secret both accept it.
    expect(new Webhook(oldSecret).verify(r.body, r.headers)).toMatchObject({ type: "card.registered" });
    expect(new Webhook(newSecret).verify(r.body, r.headers)).toMatchObject({ type: "card.registered" });
  });

  it("reach an endpoint in the order of a customer's events, a retried one first", async () => {
    const receiver = await startReceiver((n) => (n === 0 ? 500 : 200));
    await endpointFor(receiver);
    const customerUid = await registerCard(h, uid("ordered"));
    await receiver.waitFor((all) => all.length >= 1);
    await h.client.request(`mutation($c: String!) { deleteCard(customerUid: $c) { status } }`, { c: customerUid });
    const received = await receiver.waitFor((all) => all.length >= 3);
    expect(received.map((r) => r.json.type)).toEqual(["card.registered", "card.registered", "card.deleted"]);
  });

  it("take over a delivery whose process died mid-attempt (its lease expired), and leave one whose lease is held", async () => {
    const receiver = await startReceiver();
    await endpointFor(receiver);
    // Two deliveries as processes left them: each recorded with its event, its lease taken in the same transaction.
    const leased = async (customerUid: string, until: string) =>
      h.server.orm.em.fork().transactional(async (tx) => {
        const id = await recordEvent(tx, { type: "card.registered", customerUid, data: { customerUid } });
        await query({ em: tx }, `update event_deliveries set attempts = 1, leased_until = now() + ?::interval where event_id = ?`, [until, id]);
        return `evt_${id}`;
      });
    const crashed = await leased(uid("crashed"), "-1 second");
    const held = await leased(uid("held"), "1 hour");
    const after = await registerCard(h, uid("after"));

    await receiver.waitFor((all) => all.some((r) => r.json.customerUid === after));
    const [taken] = await eventually(() => deliveriesOf(h, crashed), (d) => d[0]?.status === "DELIVERED");
    expect(taken.attempts).toBe(2);
    // The held one is another process's attempt in progress: no second attempt beside it.
    expect(receiver.received.map((r) => r.headers["webhook-id"])).not.toContain(held);
    expect(await deliveriesOf(h, held)).toMatchObject([{ status: "PENDING", attempts: 1 }]);
  });

  it("go only to the endpoints that take the event's type", async () => {
    const deletions = await startReceiver();
    const everything = await startReceiver();
    await endpointFor(deletions, ["card.deleted"]);
    await endpointFor(everything);
    const customerUid = await registerCard(h, uid("typed"));
    await h.client.request(`mutation($c: String!) { deleteCard(customerUid: $c) { status } }`, { c: customerUid });
    await everything.waitFor((all) => all.length >= 2);
    const [only] = await deletions.waitFor((all) => all.length >= 1);
    expect(only.json.type).toBe("card.deleted");
    // The registration, recorded first, went to `everything` only: its delivery rows say so.
    const [registered] = (await h.client.request<{ events: { nodes: { id: string }[] } }>(EVENTS, { customerUid, type: "card.registered" })).events.nodes;
    expect((await deliveriesOf(h, registered.id)).length).toBe(1);
  });
});

describe("delivery metrics", () => {
  it("count deliveries by outcome and show the pending backlog on /metrics", async () => {
    // The tests above delivered, retried and failed deliveries on this server.
    const text = (await h.http.get("/metrics")).data as string;
    for (const outcome of ["delivered", "retry", "failed"]) expect(text).toMatch(new RegExp(`billing_event_deliveries_total\\{outcome="${outcome}"\\} [1-9]`));
    expect(text).toMatch(/billing_event_deliveries_pending \d+/);
    expect(text).toMatch(/billing_event_oldest_undelivered_seconds [\d.]+/);
  });
});

describe("the event ledger", () => {
  it("records an event only with its change: a rolled-back transaction leaves none, a committed one leaves it", async () => {
    const customerUid = uid("outbox");
    const em = h.server.orm.em.fork();
    await expect(
      em.transactional(async (tx) => {
        await recordEvent(tx, { type: "card.registered", customerUid, data: { customerUid } });
        throw new Error("the change fails after its event was written");
      }),
    ).rejects.toThrow("the change fails");
    expect(await h.sql(`select 1 from events where customer_uid = ?`, [customerUid])).toEqual([]);

    await em.transactional((tx) => recordEvent(tx, { type: "card.registered", customerUid, data: { customerUid } }));
    expect(await h.sql(`select type from events where customer_uid = ?`, [customerUid])).toEqual([{ type: "card.registered" }]);
  });

  it("shows a customer token only its own customer's events", async () => {
    const mine = await registerCard(h, uid("mine"));
    const theirs = await registerCard(h, uid("theirs"));
    const token = (await h.client.request<{ createCustomerToken: { token: string } }>(`mutation($c: String!) { createCustomerToken(customerUid: $c) { token } }`, { c: mine }))
      .createCustomerToken.token;
    const asCustomer = { authorization: `Bearer ${token}` };

    const own = await h.gql<{ events: { nodes: { customerUid: string }[] } }>(`{ events(first: 100) { nodes { customerUid } } }`, {}, asCustomer);
    expect(own.errors).toBeUndefined();
    expect(own.data!.events.nodes.map((e) => e.customerUid)).toEqual([mine]);

    const other = await h.gql(`query($c: String) { events(customerUid: $c) { nodes { id } } }`, { c: theirs }, asCustomer);
    expect(other.errors?.[0].extensions?.code).toBe("FORBIDDEN");
    const [theirEvent] = (await h.client.request<{ events: { nodes: { id: string }[] } }>(EVENTS, { customerUid: theirs })).events.nodes;
    const single = await h.gql(`query($id: ID!) { event(id: $id) { id } }`, { id: theirEvent.id }, asCustomer);
    expect(single.errors?.[0].extensions?.code).toBe("FORBIDDEN");
    // Endpoints and deliveries are the merchant's.
    const endpointsAsCustomer = await h.gql(`{ webhookEndpoints { id } }`, {}, asCustomer);
    expect(endpointsAsCustomer.errors?.[0].extensions?.code).toBe("FORBIDDEN");
  });

  it("refuses endpoint URLs that are not http(s) and event types it does not know", async () => {
    const ftp = await h.gql(`mutation { createWebhookEndpoint(url: "ftp://example.com/x") { secret } }`);
    expect(ftp.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "url" });
    const typo = await h.gql(`mutation { createWebhookEndpoint(url: "https://example.com/x", eventTypes: ["payment.payed"]) { secret } }`);
    expect(typo.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "eventTypes" });
  });
});
