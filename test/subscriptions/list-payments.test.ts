import { Harness, registerCard, uid } from "../support/harness";
import { advancePastNextPayment, renewalUid, startSub, startSubHarness, webhooksSettled } from "./helpers";

/**
 * Subscription.payments on a list of subscriptions (read for all rows
 * together) answers each row exactly what the root payments(subscriptionId:)
 * query answers for it: the same nodes, hasNextPage and endCursor, the same
 * continuation after a cursor, the same error for a cursor not made by the
 * API. Payment.subscription on a list answers each payment its own
 * subscription.
 */
let h: Harness;
let customerUid: string;
let ids: { renewed: string; started: string; trial: string };

beforeAll(async () => {
  h = await startSubHarness();
  customerUid = await registerCard(h, uid("lp"));
  // Renewed once: its first and second periods paid, the third scheduled.
  const renewed = await startSub(h, { customerUid, name: "Daily", amount: 1100, interval: "DAY" });
  await webhooksSettled(h, [renewalUid(renewed.id, 1)]);
  await advancePastNextPayment(h, renewed);
  await webhooksSettled(h, [renewalUid(renewed.id, 2)]);
  // Its first period paid, the second scheduled.
  const started = await startSub(h, { customerUid, name: "Monthly", amount: 2200, interval: "MONTH" });
  await webhooksSettled(h, [renewalUid(started.id, 1)]);
  // A trial waiting for the customer's consent: nothing charged or scheduled.
  const r = await h.client.request<{ startSubscription: { id: string } }>(`mutation($input: StartSubscriptionInput!) { startSubscription(input: $input) { id } }`, {
    input: { customerUid, name: "Trial", amount: 3300, interval: "MONTH", trialDays: 14 },
  });
  ids = { renewed: renewed.id, started: started.id, trial: r.startSubscription.id };
});
afterAll(async () => {
  await h?.close();
});

interface Conn {
  nodes: { merchantUid: string; amount: number; status: string; subscription: { id: string } | null }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}
const CONN = `nodes { merchantUid amount status subscription { id } } pageInfo { hasNextPage endCursor }`;

async function nested(first: number, after: string | null): Promise<Map<string, Conn>> {
  const r = await h.client.request<{ subscriptions: { nodes: { id: string; payments: Conn }[] } }>(
    `query($c: String, $first: Int, $after: String) { subscriptions(customerUid: $c, first: 50) { nodes { id payments(first: $first, after: $after) { ${CONN} } } } }`,
    { c: customerUid, first, after },
  );
  return new Map(r.subscriptions.nodes.map((n) => [n.id, n.payments]));
}

async function root(subscriptionId: string, first: number, after: string | null): Promise<Conn> {
  const r = await h.client.request<{ payments: Conn }>(
    `query($s: ID, $first: Int, $after: String) { payments(subscriptionId: $s, first: $first, after: $after) { ${CONN} } }`,
    { s: subscriptionId, first, after },
  );
  return r.payments;
}

describe("Subscription.payments on a list", () => {
  it("answers each subscription the root query's page for it, an empty page for one without payments", async () => {
    const pages = await nested(2, null);
    expect([...pages.keys()].sort()).toEqual(Object.values(ids).sort());
    for (const id of Object.values(ids)) expect(pages.get(id)).toEqual(await root(id, 2, null));
    expect(pages.get(ids.trial)).toEqual({ nodes: [], pageInfo: { hasNextPage: false, endCursor: null } });
    // The renewed one has more than a page; the one just started fills it exactly.
    expect(pages.get(ids.renewed)!.pageInfo.hasNextPage).toBe(true);
    expect(pages.get(ids.started)!.nodes).toHaveLength(2);
    expect(pages.get(ids.started)!.pageInfo.hasNextPage).toBe(false);
    for (const [id, page] of pages) for (const p of page.nodes) expect(p.subscription).toEqual({ id });
  });

  it("continues after a cursor as the root query does, through every payment of the subscription", async () => {
    const all = await root(ids.renewed, 50, null);
    expect(all.nodes.length).toBeGreaterThan(2);
    const walked: Conn["nodes"] = [];
    let after: string | null = null;
    for (;;) {
      const pages = await nested(2, after);
      for (const id of Object.values(ids)) expect(pages.get(id)).toEqual(await root(id, 2, after));
      const page = pages.get(ids.renewed)!;
      walked.push(...page.nodes);
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(walked).toEqual(all.nodes);
  });

  it("answers a cursor not made by the API with the root query's error", async () => {
    const bad = Buffer.from("c:not-an-id", "utf8").toString("base64url");
    const r = await h.gql(`query($c: String, $after: String) { subscriptions(customerUid: $c) { nodes { id payments(first: 2, after: $after) { ${CONN} } } } }`, {
      c: customerUid,
      after: bad,
    });
    const rootErr = await h.gql(`query($s: ID, $after: String) { payments(subscriptionId: $s, first: 2, after: $after) { ${CONN} } }`, { s: ids.renewed, after: bad });
    expect(rootErr.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "after" });
    expect(r.errors?.length).toBeGreaterThan(0);
    for (const e of r.errors!) {
      expect(e.message).toBe(rootErr.errors![0].message);
      expect(e.extensions).toEqual(rootErr.errors![0].extensions);
    }
  });
});

describe("Payment.subscription on a list", () => {
  it("answers each payment its own subscription, and null for a payment of none", async () => {
    const charge = await h.client.request<{ chargeAgain: { merchantUid: string } }>(
      `mutation($input: ChargeAgainInput!) { chargeAgain(input: $input) { merchantUid } }`,
      { input: { customerUid, amount: 500, name: "one-off" } },
    );
    const r = await h.client.request<{ payments: { nodes: { merchantUid: string; subscription: { id: string; name: string } | null }[] } }>(
      `query($c: String) { payments(customerUid: $c, first: 50) { nodes { merchantUid subscription { id name } } } }`,
      { c: customerUid },
    );
    const names = { [ids.renewed]: "Daily", [ids.started]: "Monthly" };
    const seen = new Set<string>();
    for (const p of r.payments.nodes) {
      if (p.merchantUid === charge.chargeAgain.merchantUid) {
        expect(p.subscription).toBeNull();
        continue;
      }
      const own = Object.values(ids).find((id) => p.merchantUid.startsWith(`sub_${id}_`));
      expect(p.subscription).toEqual({ id: own, name: names[own!] });
      seen.add(own!);
    }
    expect([...seen].sort()).toEqual([ids.renewed, ids.started].sort());
  });
});
