import { registerCard, startHarness, uid, API_KEY, type Harness } from "../support/harness";
import { eventually, liveClient, subscribeEvents } from "./helpers";

/*
 * Live updates: Live.events over graphql-ws on /graphql, with the same
 * credentials as HTTP (in connectionParams). Fed by LISTEN/NOTIFY on
 * PostgreSQL and by reading the events table on the embedded database.
 */

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

/** Resolves once the server holds `n` live subscriptions: an event recorded afterwards reaches them. */
function subscribed(n: number) {
  return eventually(
    async () => h.server.feed.subscriberCount,
    (count) => count >= n,
  );
}

async function customerToken(customerUid: string): Promise<string> {
  const r = await h.client.request<{ createCustomerToken: { token: string } }>(`mutation($c: String!) { createCustomerToken(customerUid: $c) { token } }`, { c: customerUid });
  return r.createCustomerToken.token;
}

describe("live updates (graphql-ws)", () => {
  it("deliver an event to a merchant's subscription as it is committed, filtered by type", async () => {
    const client = liveClient(h.server.url, `Bearer ${API_KEY}`);
    try {
      const before = h.server.feed.subscriberCount;
      const live = subscribeEvents(client, { types: ["card.deleted"] });
      await subscribed(before + 1);
      const customerUid = await registerCard(h, uid("live"));
      await h.client.request(`mutation($c: String!) { deleteCard(customerUid: $c) { status } }`, { c: customerUid });
      // The registration (recorded first) is not of the type asked for: the deletion is the first event received.
      const e = await live.next();
      expect(e).toMatchObject({ type: "card.deleted", customerUid, data: { customerUid, status: "DELETED" } });
      expect(e.id).toMatch(/^evt_\d+$/);
      live.dispose();
    } finally {
      await client.dispose();
    }
  });

  it("never deliver another customer's event to a customer token", async () => {
    const mine = uid("own");
    const theirs = uid("other");
    const client = liveClient(h.server.url, `Bearer ${await customerToken(mine)}`);
    try {
      const before = h.server.feed.subscriberCount;
      const live = subscribeEvents(client, {});
      await subscribed(before + 1);
      await registerCard(h, theirs);
      await registerCard(h, mine);
      // Events reach a subscriber in the order they were recorded: had the other customer's (recorded first)
      // been let through, it would be the first one here.
      const first = await live.next();
      expect(first).toMatchObject({ type: "card.registered", customerUid: mine });
      live.dispose();

      const forbidden = subscribeEvents(client, { customerUid: theirs });
      await expect(forbidden.next()).rejects.toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: "FORBIDDEN" }) })]);
    } finally {
      await client.dispose();
    }
  });

  it("refuse a connection without valid credentials, and queries or mutations over the socket", async () => {
    const anonymous = liveClient(h.server.url, undefined);
    try {
      await expect(subscribeEvents(anonymous, {}).next()).rejects.toMatchObject({ code: 4403 });
    } finally {
      await anonymous.dispose();
    }
    const merchant = liveClient(h.server.url, `Bearer ${API_KEY}`);
    try {
      const query = await new Promise<unknown>((resolve) => {
        merchant.subscribe({ query: `{ webhookEndpoints { id } }` }, { next: (m) => resolve(m.errors), error: resolve, complete: () => resolve("complete") });
      });
      expect(JSON.stringify(query)).toMatch(/Only subscription operations/);
    } finally {
      await merchant.dispose();
    }
  });
});
