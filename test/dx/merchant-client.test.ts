/**
 * The example merchant client (examples/merchant-client) against a live server and the emulator:
 * registerCard → startSubscription → listPayments through the generated typed documents, its
 * error mapping, and the runnable demo (main.ts through tsx).
 */
import { execFile, spawn } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "../support/processes";
import { BillingApiError, createBillingClient, type BillingClient, type Card, type Payment, type Subscription } from "../../examples/merchant-client/client";
import { createLiveEvents, type LiveEvent } from "../../examples/merchant-client/live";
import { API_KEY, GOOD_CARD, registerCard, startHarness, TEST_CARDS, uid, type Harness } from "../support/harness";
import { waitFor } from "../subscriptions/helpers";

const root = path.resolve(__dirname, "../..");

describe("typed merchant client", () => {
  let h: Harness;
  let billing: BillingClient;

  beforeAll(async () => {
    h = await startHarness();
    billing = createBillingClient(`${h.server.url}/graphql`, API_KEY);
  });
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
  });

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
  });

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

  it("follows live events with the typed graphql-ws client: a card registration arrives as it is committed", async () => {
    const customerUid = uid("live");
    const before = h.server.feed.subscriberCount;
    const live = createLiveEvents(`${h.server.url}/graphql`, API_KEY);
    try {
      const received: LiveEvent[] = [];
      const errors: unknown[] = [];
      const stop = live.subscribe({ customerUid, types: ["card.registered", "card.deleted"] }, (e) => received.push(e), (err) => errors.push(err));
      // The server holds the subscription: an event committed from now on reaches it.
      await waitFor(async () => h.server.feed.subscriberCount > before, 30_000);
      await billing.registerCard({ customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12" });
      await waitFor(async () => received.length > 0 || errors.length > 0, 30_000);
      expect(errors).toEqual([]);
      const [event] = received;
      // Compile-time: the generated type; `data` is the card as the API shows it.
      const type: string = event.type;
      expect(type).toBe("card.registered");
      expect(event).toMatchObject({ customerUid, subscriptionId: null, data: { customerUid, status: "ACTIVE" } });
      expect(event.data.cardNumberMasked).toEqual(expect.stringContaining("4242"));
      stop();
    } finally {
      await live.close();
    }
    // Gone from the server too (the next test counts the subscriptions it holds).
    await waitFor(async () => h.server.feed.subscriberCount === before, 30_000);
  });

  it("runs the live demo (npm run example:live): it prints an event committed while it listens", async () => {
    const customerUid = uid("livedemo");
    const tsx = path.join(root, "node_modules/tsx/dist/cli.mjs");
    const env: NodeJS.ProcessEnv = { ...process.env, BILLING_URL: `${h.server.url}/graphql`, BILLING_API_KEY: API_KEY, CUSTOMER_UID: customerUid, LIVE_LIMIT: "1" };
    delete env.NODE_OPTIONS;
    const before = h.server.feed.subscriberCount;
    const child = spawn(process.execPath, [tsx, "examples/merchant-client/live-main.ts"], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += String(d)));
    child.stderr.on("data", (d) => (output += String(d)));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await waitFor(async () => h.server.feed.subscriberCount > before || child.exitCode !== null, 60_000).catch((err: Error) => {
        throw new Error(`${err.message}; the demo's output:\n${output}`);
      });
      expect([child.exitCode, output]).toEqual([null, expect.stringContaining("listening for events")]);
      await registerCard(h, customerUid);
      expect(await exited).toBe(0);
      expect(output).toContain(`listening for events at ws://`);
      expect(output).toMatch(new RegExp(`event evt_\\d+: card.registered ${customerUid} ACTIVE`));
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    }
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
