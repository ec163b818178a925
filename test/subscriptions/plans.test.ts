import { mintCustomerToken } from "../../src/security/customer-token";
import { Harness, registerCard, uid } from "../support/harness";
import { iamportPaymentByOrder, iamportSchedule, paymentRows, renewalUid, startSubHarness, unix } from "./helpers";

const SECRET = "plans-test-secret-0123456789abcdefghij";
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness({ env: { CUSTOMER_TOKEN_SECRET: SECRET } });
});
afterAll(async () => {
  await h?.close();
});

const PLAN_FIELDS = `id code name amount interval intervalCount trialDays active createdAt`;
const CREATE = `mutation($input: CreatePlanInput!) { createPlan(input: $input) { ${PLAN_FIELDS} } }`;
const ARCHIVE = `mutation($code: String!) { archivePlan(code: $code) { ${PLAN_FIELDS} } }`;
const START = `mutation($input: StartSubscriptionInput!) {
  startSubscription(input: $input) { id name amount interval intervalCount status nextPaymentAt plan { code } }
}`;

interface PlanView {
  id: string;
  code: string;
  name: string;
  amount: number;
  interval: string;
  intervalCount: number;
  trialDays: number;
  active: boolean;
}

async function createPlan(input: Record<string, unknown>): Promise<PlanView> {
  const r = await h.client.request<{ createPlan: PlanView }>(CREATE, { input });
  return r.createPlan;
}

const codes = (r: { errors?: { extensions?: { code?: string; field?: string } }[] }) => (r.errors ?? []).map((e) => [e.extensions?.code, e.extensions?.field]);

describe("plans", () => {
  it("are created, read by code and listed, oldest first, with an active filter", async () => {
    const code = uid("basic");
    const plan = await createPlan({ code, name: "Basic", amount: 9_900, interval: "MONTH" });
    expect(plan).toMatchObject({ code, name: "Basic", amount: 9_900, interval: "MONTH", intervalCount: 1, trialDays: 0, active: true });
    const other = await createPlan({ code: uid("yearly"), name: "Yearly", amount: 99_000, interval: "YEAR", intervalCount: 1, trialDays: 14 });
    expect(other.trialDays).toBe(14);

    const one = await h.client.request<{ plan: PlanView | null }>(`query($c: String!) { plan(code: $c) { ${PLAN_FIELDS} } }`, { c: code });
    expect(one.plan).toEqual(expect.objectContaining({ id: plan.id, code }));
    const none = await h.client.request<{ plan: PlanView | null }>(`query { plan(code: "no-such-plan") { id } }`);
    expect(none.plan).toBeNull();

    const page1 = await h.client.request<{ plans: { nodes: PlanView[]; pageInfo: { hasNextPage: boolean; endCursor: string } } }>(
      `query { plans(first: 1) { nodes { code } pageInfo { hasNextPage endCursor } } }`,
    );
    expect(page1.plans.nodes.map((p) => p.code)).toEqual([code]);
    expect(page1.plans.pageInfo.hasNextPage).toBe(true);
    const page2 = await h.client.request<{ plans: { nodes: PlanView[] } }>(`query($a: String) { plans(first: 1, after: $a) { nodes { code } } }`, {
      a: page1.plans.pageInfo.endCursor,
    });
    expect(page2.plans.nodes.map((p) => p.code)).toEqual([other.code]);

    await h.client.request(ARCHIVE, { code: other.code });
    const active = await h.client.request<{ plans: { nodes: PlanView[] } }>(`query { plans(first: 100, active: true) { nodes { code } } }`);
    expect(active.plans.nodes.map((p) => p.code)).toContain(code);
    expect(active.plans.nodes.map((p) => p.code)).not.toContain(other.code);
    const archived = await h.client.request<{ plans: { nodes: PlanView[] } }>(`query { plans(first: 100, active: false) { nodes { code active } } }`);
    expect(archived.plans.nodes).toContainEqual({ code: other.code, active: false });
  });

  it("refuse bad input with the field named, and a code already taken with CONFLICT", async () => {
    const code = uid("dup");
    await createPlan({ code, name: "Dup", amount: 1_000, interval: "WEEK" });
    const again = await h.gql(CREATE, { input: { code, name: "Dup 2", amount: 2_000, interval: "WEEK" } });
    expect(codes(again)).toEqual([["CONFLICT", undefined]]);
    expect(again.errors?.[0].message).toContain(code);

    const bad: [Record<string, unknown>, string][] = [
      [{ code: "has space", name: "x", amount: 100, interval: "DAY" }, "code"],
      [{ code: uid("p"), name: " ", amount: 100, interval: "DAY" }, "name"],
      [{ code: uid("p"), name: "x", amount: 0, interval: "DAY" }, "amount"],
      [{ code: uid("p"), name: "x", amount: 100, interval: "DAY", intervalCount: 0 }, "intervalCount"],
      [{ code: uid("p"), name: "x", amount: 100, interval: "DAY", trialDays: -1 }, "trialDays"],
      [{ code: uid("p"), name: "x", amount: 100, interval: "DAY", trialDays: 400 }, "trialDays"],
    ];
    for (const [input, field] of bad) {
      const r = await h.gql(CREATE, { input });
      expect({ input, errors: codes(r) }).toEqual({ input, errors: [["BAD_USER_INPUT", field]] });
    }
  });

  it("are created and archived only with a merchant key; a customer token may read them", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const token = `Bearer ${mintCustomerToken(SECRET, customerUid, 600)}`;
    const code = uid("m");
    const created = await h.gql(CREATE, { input: { code, name: "M", amount: 500, interval: "MONTH" } }, { authorization: token });
    expect(codes(created)).toEqual([["FORBIDDEN", undefined]]);
    await createPlan({ code, name: "M", amount: 500, interval: "MONTH" });
    expect(codes(await h.gql(ARCHIVE, { code }, { authorization: token }))).toEqual([["FORBIDDEN", undefined]]);
    const read = await h.gql<{ plan: { code: string } }>(`query($c: String!) { plan(code: $c) { code } }`, { c: code }, { authorization: token });
    expect(read.data?.plan).toEqual({ code });
    const archivedUnknown = await h.gql(ARCHIVE, { code: "no-such-plan" });
    expect(codes(archivedUnknown)).toEqual([["NOT_FOUND", undefined]]);
  });
});

describe("startSubscription with planCode", () => {
  it("takes name, amount and interval from the plan, charges it, and links the plan", async () => {
    const plan = await createPlan({ code: uid("pro"), name: "Pro", amount: 14_900, interval: "WEEK", intervalCount: 2 });
    const customerUid = await registerCard(h, uid("c"));
    const { startSubscription: sub } = await h.client.request<{
      startSubscription: { id: string; name: string; amount: number; interval: string; intervalCount: number; status: string; nextPaymentAt: string; plan: { code: string } };
    }>(START, { input: { customerUid, planCode: plan.code } });
    expect(sub).toMatchObject({ name: "Pro", amount: 14_900, interval: "WEEK", intervalCount: 2, status: "ACTIVE", plan: { code: plan.code } });
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 1))).toMatchObject({ status: "paid", amount: 14_900 });
    expect(await iamportSchedule(h, renewalUid(sub.id, 2))).toMatchObject({ schedule_status: "scheduled", amount: 14_900, schedule_at: unix(sub.nextPaymentAt) });
  });

  it("refuses an unknown or archived plan, and explicit terms that contradict the plan, charging nothing", async () => {
    const plan = await createPlan({ code: uid("arch"), name: "Arch", amount: 3_000, interval: "MONTH" });
    const customerUid = await registerCard(h, uid("c"));
    // Accepted while active; the subscription goes on after the archive.
    const { startSubscription: before } = await h.client.request<{ startSubscription: { id: string; status: string } }>(START, {
      input: { customerUid, planCode: plan.code, name: "Arch", amount: 3_000 },
    });
    expect(before.status).toBe("ACTIVE");
    await h.client.request(ARCHIVE, { code: plan.code });

    const other = await registerCard(h, uid("c"));
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ planCode: plan.code }, "planCode", /archived/],
      [{ planCode: "no-such-plan" }, "planCode", /names no plan/],
      [{ name: "No plan", interval: "MONTH" }, "amount", /required when no planCode/],
      [{ amount: 100, interval: "MONTH" }, "name", /required when no planCode/],
    ];
    for (const [input, field, message] of cases) {
      const r = await h.gql(START, { input: { customerUid: other, ...input } });
      expect({ input, errors: codes(r) }).toEqual({ input, errors: [["BAD_USER_INPUT", field]] });
      expect(r.errors?.[0].message).toMatch(message);
    }
    const live = await createPlan({ code: uid("live"), name: "Live", amount: 3_000, interval: "MONTH" });
    const contradicted = await h.gql(START, { input: { customerUid: other, planCode: live.code, amount: 2_000 } });
    expect(codes(contradicted)).toEqual([["BAD_USER_INPUT", "amount"]]);
    expect(await h.sql(`select 1 from subscriptions where customer_uid = ?`, [other])).toEqual([]);

    const still = await h.client.request<{ subscription: { status: string; plan: { code: string; active: boolean } } }>(
      `query($id: ID!) { subscription(id: $id) { status plan { code active } } }`,
      { id: before.id },
    );
    expect(still.subscription).toEqual({ status: "ACTIVE", plan: { code: plan.code, active: false } });
    expect((await paymentRows(h, before.id)).map((p) => p.status)).toEqual(["PAID", "SCHEDULED"]);
  });
});
