import { Harness, PAYMENT_FIELDS, registerCard, startHarness, TEST_CARDS, uid } from "../support/harness";

/** payment(merchantUid|impUid) and payments(filters, cursor pagination). */

let h: Harness;
const paidOf: { merchantUid: string; impUid: string }[] = [];
let many: string; // 5 PAID payments
let mixed: string; // 1 PAID then 3 FAILED
let subscriptionId: string;

const CHARGE = `mutation C($input: ChargeAgainInput!) { chargeAgain(input: $input) { merchantUid impUid status } }`;
const PAYMENT = `query P($merchantUid: String, $impUid: String) { payment(merchantUid: $merchantUid, impUid: $impUid) { ${PAYMENT_FIELDS} subscription { id } } }`;
const PAYMENTS = `query L($customerUid: String, $subscriptionId: ID, $status: PaymentStatus, $first: Int, $after: String) {
  payments(customerUid: $customerUid, subscriptionId: $subscriptionId, status: $status, first: $first, after: $after) {
    nodes { merchantUid status customerUid subscription { id } }
    pageInfo { hasNextPage endCursor }
  }
}`;

type Node = { merchantUid: string; status: string; customerUid: string; subscription: { id: string } | null };
type Conn = { nodes: Node[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };

async function list(vars: Record<string, unknown>): Promise<Conn> {
  return (await h.client.request<{ payments: Conn }>(PAYMENTS, vars)).payments;
}

beforeAll(async () => {
  h = await startHarness();
  many = await registerCard(h, uid("many"));
  for (let i = 0; i < 5; i++) {
    const { chargeAgain } = await h.client.request<{ chargeAgain: { merchantUid: string; impUid: string; status: string } }>(CHARGE, {
      input: { customerUid: many, amount: 1000 + i, name: `charge ${i}` },
    });
    paidOf.push(chargeAgain);
  }
  mixed = await registerCard(h, uid("mixed"), TEST_CARDS.firstOkThenDeclines);
  for (let i = 0; i < 4; i++) await h.client.request(CHARGE, { input: { customerUid: mixed, amount: 700, name: `m${i}` } });
  const subCustomer = await registerCard(h, uid("sub"));
  const r = await h.client.request<{ startSubscription: { id: string } }>(
    `mutation S($input: StartSubscriptionInput!) { startSubscription(input: $input) { id } }`,
    { input: { customerUid: subCustomer, name: "Plan", amount: 5500, interval: "MONTH" } },
  );
  subscriptionId = r.startSubscription.id;
});
afterAll(async () => {
  await h?.close();
});

describe("payment", () => {
  it("finds a payment by merchantUid, by impUid, and by both", async () => {
    const p = paidOf[0];
    const byMerchant = await h.client.request<{ payment: Record<string, unknown> }>(PAYMENT, { merchantUid: p.merchantUid });
    expect(byMerchant.payment).toMatchObject({ merchantUid: p.merchantUid, impUid: p.impUid, customerUid: many, amount: 1000, status: "PAID", subscription: null });
    const byImp = await h.client.request<{ payment: Record<string, unknown> }>(PAYMENT, { impUid: p.impUid });
    expect(byImp.payment).toEqual(byMerchant.payment);
    const both = await h.client.request<{ payment: Record<string, unknown> }>(PAYMENT, { merchantUid: p.merchantUid, impUid: p.impUid });
    expect(both.payment).toEqual(byMerchant.payment);
  });

  it("answers null for an unknown payment, and for a merchantUid and impUid of different payments", async () => {
    expect((await h.gql(PAYMENT, { merchantUid: uid("nope") })).data).toEqual({ payment: null });
    expect((await h.gql(PAYMENT, { impUid: "imps_nope" })).data).toEqual({ payment: null });
    const mismatch = await h.gql(PAYMENT, { merchantUid: paidOf[0].merchantUid, impUid: paidOf[1].impUid });
    expect(mismatch.errors).toBeUndefined();
    expect(mismatch.data).toEqual({ payment: null });
  });

  it("answers BAD_USER_INPUT when neither merchantUid nor impUid is given", async () => {
    const r = await h.gql(PAYMENT, {});
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "merchantUid" });
  });

  it.each([
    [{ merchantUid: "a\u0000b" }, "merchantUid"],
    [{ impUid: "a\u0000b" }, "impUid"],
    [{ merchantUid: "has space" }, "merchantUid"],
  ])("answers BAD_USER_INPUT (not a database error) for a lookup value no payment can have: %p", async (vars, field) => {
    const r = await h.gql(PAYMENT, vars);
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
  });

  it("shows the subscription a payment belongs to", async () => {
    const { payments } = await h.client.request<{ payments: Conn }>(PAYMENTS, { subscriptionId, first: 10 });
    const { payment } = await h.client.request<{ payment: { subscription: { id: string } } }>(PAYMENT, { merchantUid: payments.nodes[0].merchantUid });
    expect(payment.subscription).toEqual({ id: subscriptionId });
  });
});

describe("payments", () => {
  it("filters by customerUid, newest first", async () => {
    const c = await list({ customerUid: many });
    expect(c.nodes.map((n) => n.merchantUid)).toEqual(paidOf.map((p) => p.merchantUid).reverse());
    expect(c.nodes.every((n) => n.customerUid === many)).toBe(true);
    expect(c.pageInfo.hasNextPage).toBe(false);
  });

  it("filters by status, alone and with customerUid", async () => {
    const failed = await list({ customerUid: mixed, status: "FAILED" });
    expect(failed.nodes).toHaveLength(3);
    expect(failed.nodes.every((n) => n.status === "FAILED" && n.customerUid === mixed)).toBe(true);
    const paid = await list({ customerUid: mixed, status: "PAID" });
    expect(paid.nodes).toHaveLength(1);
    const allFailed = await list({ status: "FAILED", first: 100 });
    expect(allFailed.nodes.length).toBeGreaterThanOrEqual(3);
    expect(allFailed.nodes.every((n) => n.status === "FAILED")).toBe(true);
    expect(allFailed.nodes.length).toBeGreaterThanOrEqual(3);
    const none = await list({ customerUid: many, status: "FAILED" });
    expect(none).toEqual({ nodes: [], pageInfo: { hasNextPage: false, endCursor: null } });
  });

  it("filters by subscriptionId", async () => {
    const c = await list({ subscriptionId, first: 10 });
    expect(c.nodes.length).toBeGreaterThanOrEqual(1);
    expect(c.nodes.every((n) => n.subscription?.id === subscriptionId)).toBe(true);
    expect(c.nodes.some((n) => n.status === "PAID")).toBe(true);
    const other = await list({ subscriptionId: "s_does_not_exist" });
    expect(other.nodes).toEqual([]);
  });

  it("paginates with first/after: every payment once, in order, hasNextPage and endCursor right", async () => {
    const seen: string[] = [];
    let after: string | null = null;
    const pages: Conn[] = [];
    for (let i = 0; i < 5; i++) {
      const page: Conn = await list({ customerUid: many, first: 2, after });
      pages.push(page);
      seen.push(...page.nodes.map((n) => n.merchantUid));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(pages.map((p) => p.nodes.length)).toEqual([2, 2, 1]);
    expect(pages.map((p) => p.pageInfo.hasNextPage)).toEqual([true, true, false]);
    expect(seen).toEqual(paidOf.map((p) => p.merchantUid).reverse());
    expect(pages[2].pageInfo.endCursor).toEqual(expect.any(String));
    // After the last node there is nothing.
    const end = await list({ customerUid: many, first: 2, after: pages[2].pageInfo.endCursor });
    expect(end).toEqual({ nodes: [], pageInfo: { hasNextPage: false, endCursor: null } });
    // An exact page: first equal to the count has no next page.
    expect((await list({ customerUid: many, first: 5 })).pageInfo.hasNextPage).toBe(false);
    expect((await list({ customerUid: many, first: 4 })).pageInfo.hasNextPage).toBe(true);
  });

  it("accepts first=100", async () => {
    const r = await h.gql(PAYMENTS, { first: 100 });
    expect(r.errors).toBeUndefined();
  });

  it.each([
    ["a customerUid with a NUL byte", { customerUid: "a\u0000b" }, "customerUid"],
    ["a subscriptionId with a NUL byte", { subscriptionId: "s\u0000" }, "subscriptionId"],
    ["first over 100", { first: 101 }, "first"],
    ["first 0", { first: 0 }, "first"],
    ["first negative", { first: -1 }, "first"],
    ["a cursor that is not base64 of ours", { after: "garbage" }, "after"],
    ["an empty cursor", { after: "" }, "after"],
    ["a well-formed cursor with a key that is not an id", { after: Buffer.from("c:abc").toString("base64url") }, "after"],
    ["a cursor with an id beyond bigint", { after: Buffer.from("c:99999999999999999999").toString("base64url") }, "after"],
  ])("answers BAD_USER_INPUT for %s", async (_what, vars, field) => {
    const r = await h.gql(PAYMENTS, { customerUid: many, ...vars });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
  });

  it("answers a GraphQL validation error for a status that does not exist", async () => {
    const r = await h.gql(PAYMENTS, { status: "SOMETIMES" });
    expect(r.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
    expect(r.data).toBeUndefined();
  });
});
