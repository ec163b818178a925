/**
 * The example merchant client (examples/merchant-client) against a live server and the emulator:
 * registerCard → startSubscription → listPayments through the generated typed documents, its
 * error mapping, and the runnable demo (main.ts through tsx).
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "../support/processes";
import { BillingApiError, createBillingClient, type BillingClient, type Card, type Payment, type Subscription } from "../../examples/merchant-client/client";
import { API_KEY, GOOD_CARD, startHarness, TEST_CARDS, uid, type Harness } from "../support/harness";

const root = path.resolve(__dirname, "../..");

describe("typed merchant client", () => {
  let h: Harness;
  let billing: BillingClient;

  beforeAll(async () => {
    h = await startHarness();
    billing = createBillingClient(`${h.server.url}/graphql`, API_KEY);
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it("registers a card, starts a subscription and lists its PAID first payment, with typed results", async () => {
    const customerUid = uid("typed");
    const card: Card = await billing.registerCard({ customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12" });
    // Compile-time: the status is the schema's enum, and unselected fields do not exist on the result.
    const cardStatus: "ACTIVE" | "DELETED" = card.status;
    // @ts-expect-error cardNumber is input only: the result has cardNumberMasked
    void card.cardNumber;
    expect(cardStatus).toBe("ACTIVE");
    expect(card).toMatchObject({ customerUid, cardNumberMasked: expect.stringContaining("4242") });

    const sub: Subscription = await billing.startSubscription({ customerUid, name: "Pro monthly", amount: 9900, interval: "MONTH" });
    expect(sub).toMatchObject({ customerUid, status: "ACTIVE", amount: 9900, interval: "MONTH", intervalCount: 1, cancelAtPeriodEnd: false });
    expect(typeof sub.id).toBe("string");
    expect(Date.parse(sub.currentPeriodEnd ?? "")).toBeGreaterThan(Date.now());

    const page = await billing.listPayments({ customerUid, first: 10 });
    const payments: Payment[] = page.nodes;
    const paid = payments.filter((p) => p.status === "PAID");
    expect(paid).toHaveLength(1);
    expect(paid[0]).toMatchObject({ customerUid, amount: 9900, paidAmount: 9900, currency: "KRW", failReason: null, subscription: { id: sub.id } });
    expect(paid[0].impUid).toEqual(expect.any(String));
    expect(page.pageInfo.hasNextPage).toBe(false);

    const bySubscription = await billing.listPayments({ subscriptionId: sub.id, status: "PAID" });
    expect(bySubscription.nodes.map((p) => p.merchantUid)).toEqual([paid[0].merchantUid]);
  }, 60_000);

  it("turns GraphQL errors into BillingApiError with the server's code", async () => {
    const refused = await billing
      .registerCard({ customerUid: uid("refused"), cardNumber: TEST_CARDS.refused, expiry: "2031-12", birth: "880101", pwd2digit: "12" })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BillingApiError);
    expect(refused).toMatchObject({ code: "CARD_REJECTED" });

    const noCard = await billing.startSubscription({ customerUid: uid("nocard"), name: "x", amount: 1000, interval: "MONTH" }).catch((e: unknown) => e);
    expect(noCard).toMatchObject({ name: "BillingApiError", code: "NOT_FOUND" });

    const badKey = await createBillingClient(`${h.server.url}/graphql`, "wrong-key").listPayments().catch((e: unknown) => e);
    expect(badKey).toMatchObject({ name: "BillingApiError", code: "UNAUTHENTICATED", httpStatus: 401 });
  }, 60_000);

  it("runs the demo (npm run example:client) against the server", async () => {
    const customerUid = uid("demo");
    const tsx = path.join(root, "node_modules/tsx/dist/cli.mjs");
    const env: NodeJS.ProcessEnv = { ...process.env, BILLING_URL: `${h.server.url}/graphql`, BILLING_API_KEY: API_KEY, CUSTOMER_UID: customerUid };
    delete env.NODE_OPTIONS;
    const { stdout } = await promisify(execFile)(process.execPath, [tsx, "examples/merchant-client/main.ts"], { cwd: root, env, timeout: 60_000 });
    expect(stdout).toContain(`card ${customerUid}:`);
    expect(stdout).toMatch(/subscription \S+: ACTIVE/);
    expect(stdout).toMatch(/payment \S+: PAID 9900 KRW/);
  }, 90_000);

  it("the demo says which BILLING_URL it cannot reach, without a stack, when no server answers there", async () => {
    const tsx = path.join(root, "node_modules/tsx/dist/cli.mjs");
    const url = `http://127.0.0.1:${await freePort()}/graphql`;
    const env: NodeJS.ProcessEnv = { ...process.env, BILLING_URL: url, BILLING_API_KEY: API_KEY };
    delete env.NODE_OPTIONS;
    const failed = await promisify(execFile)(process.execPath, [tsx, "examples/merchant-client/main.ts"], { cwd: root, env, timeout: 60_000 }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr.trim()).toBe(`Cannot reach the billing server at ${url} (ECONNREFUSED): start it (npm start), or set BILLING_URL to its /graphql address.`);
  }, 90_000);
});
