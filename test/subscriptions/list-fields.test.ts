import { Harness, registerCard, uid } from "../support/harness";
import { startSub, startSubHarness, webhooksSettled, renewalUid } from "./helpers";

/**
 * A list of subscriptions answers each row's own plan, price change in
 * flight, notices and card, and reads each of them for the whole page in one
 * statement (per request, not per row). The statements are counted as the
 * database driver sends them (knex's query events), not timed.
 */
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

const suffix = uid("l").slice(-6);
const plan = (code: string) => `${code}-${suffix}`;

interface Row {
  id: string;
  name: string;
  status: string;
  plan: { code: string; amount: number } | null;
  pendingPriceChange: { id: string; newAmount: number; status: string } | null;
  notices: { id: string; kind: string; dueAt: string; sentAt: string | null }[];
  latest: { id: string; kind: string }[];
  card: { customerUid: string; cardNumberMasked: string | null } | null;
}
const ROW = `id name status plan { code amount } pendingPriceChange { id newAmount status } notices { id kind dueAt sentAt } latest: notices(first: 1) { id kind } card { customerUid cardNumberMasked }`;
const LIST = `query($c: String) { subscriptions(customerUid: $c, first: 50) { nodes { ${ROW} } } }`;
const ONE = `query($id: ID!) { subscription(id: $id) { ${ROW} } }`;

async function startFrom(customerUid: string, input: Record<string, unknown>): Promise<string> {
  const r = await h.client.request<{ startSubscription: { id: string } }>(`mutation($input: StartSubscriptionInput!) { startSubscription(input: $input) { id } }`, {
    input: { customerUid, ...input },
  });
  return r.startSubscription.id;
}

/** Every statement the server's pool sends while `fn` runs (knex emits each one, ORM queries and raw SQL alike). */
async function statementsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; sql: string[] }> {
  const knex = h.server.orm.em.getKnex();
  const sql: string[] = [];
  const listener = (q: { sql: string }) => sql.push(q.sql);
  knex.on("query", listener);
  try {
    return { result: await fn(), sql };
  } finally {
    knex.removeListener("query", listener);
  }
}

describe("Subscription's fields on a list", () => {
  let customerUid: string;
  let ids: { basic: string; pro: string; custom: string; trial: string; shortTrial: string };
  let changeId: string;

  beforeAll(async () => {
    for (const [code, amount, trialDays] of [
      ["basic", 9900, 0],
      ["pro", 19_900, 0],
      ["trial", 8900, 14],
    ] as const) {
      await h.client.request(`mutation($input: CreatePlanInput!) { createPlan(input: $input) { code } }`, {
        input: { code: plan(code), name: `${code} ${suffix}`, amount, interval: "MONTH", trialDays },
      });
    }
    customerUid = await registerCard(h, uid("lf"));
    ids = {
      basic: await startFrom(customerUid, { planCode: plan("basic") }),
      pro: await startFrom(customerUid, { planCode: plan("pro") }),
      custom: (await startSub(h, { customerUid, name: "Custom terms", amount: 5000 })).id,
      trial: await startFrom(customerUid, { planCode: plan("trial") }),
      // Its trial ends within TRIAL_NOTICE_DAYS: reconciliation sends its notice at once.
      shortTrial: await startFrom(customerUid, { name: "Short trial", amount: 3000, interval: "MONTH", trialDays: 3 }),
    };
    await webhooksSettled(h, [renewalUid(ids.basic, 1), renewalUid(ids.pro, 1), renewalUid(ids.custom, 1)]);
    const r = await h.client.request<{ requestPriceChange: { id: string } }>(
      `mutation($input: RequestPriceChangeInput!) { requestPriceChange(input: $input) { id } }`,
      { input: { subscriptionId: ids.basic, newAmount: 12_900 } },
    );
    changeId = r.requestPriceChange.id;
    await h.server.reconciler.runOnce();
  });

  it("answers each row its own plan, pending price change, notices and card, as the single query does", async () => {
    const { subscriptions } = await h.client.request<{ subscriptions: { nodes: Row[] } }>(LIST, { c: customerUid });
    const byId = new Map(subscriptions.nodes.map((n) => [n.id, n]));
    expect([...byId.keys()].sort()).toEqual(Object.values(ids).sort());

    expect(byId.get(ids.basic)).toMatchObject({ plan: { code: plan("basic"), amount: 9900 }, pendingPriceChange: { id: changeId, newAmount: 12_900, status: "PENDING" } });
    expect(byId.get(ids.pro)).toMatchObject({ plan: { code: plan("pro"), amount: 19_900 }, pendingPriceChange: null });
    expect(byId.get(ids.custom)).toMatchObject({ plan: null, pendingPriceChange: null });
    expect(byId.get(ids.trial)).toMatchObject({ status: "TRIALING", plan: { code: plan("trial") }, pendingPriceChange: null });
    expect(byId.get(ids.trial)!.notices.map((n) => [n.kind, n.sentAt])).toEqual([["TRIAL_ENDING", null]]);
    expect(byId.get(ids.shortTrial)).toMatchObject({ status: "TRIALING", plan: null });
    expect(byId.get(ids.shortTrial)!.notices.map((n) => [n.kind, n.sentAt === null])).toEqual([["TRIAL_ENDING", false]]);
    // A renewal notice is upcoming for each paid monthly subscription, and for nobody else.
    for (const id of [ids.basic, ids.pro, ids.custom]) expect(byId.get(id)!.notices.map((n) => n.kind)).toContain("RENEWAL_UPCOMING");
    for (const n of subscriptions.nodes) {
      expect(n.card).toMatchObject({ customerUid, cardNumberMasked: expect.stringMatching(/\*/) });
      expect(n.latest).toEqual(n.notices.slice(0, 1).map(({ id, kind }) => ({ id, kind })));
      // Read alone, each row answers the same.
      const { subscription } = await h.client.request<{ subscription: Row }>(ONE, { id: n.id });
      expect(subscription).toEqual(n);
    }
  });

  it("reads plans, price changes, notices (per `first`) and cards once for the whole page", async () => {
    const { result, sql } = await statementsDuring(() => h.client.request<{ subscriptions: { nodes: Row[] } }>(LIST, { c: customerUid }));
    expect(result.subscriptions.nodes).toHaveLength(5);
    const touching = (table: string) => sql.filter((s) => s.includes(`"${table}"`));
    expect(touching("plans")).toHaveLength(1);
    expect(touching("price_changes")).toHaveLength(1);
    // Two statements: notices and notices(first: 1) each read their own number per row.
    expect(touching("notices")).toHaveLength(2);
    expect(touching("cards")).toHaveLength(1);
  });
});
