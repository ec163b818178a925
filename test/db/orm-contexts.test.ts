// First, as the server's entry points do: MikroORM loaded through it.
import { ormContextsScoped } from "../../src/db/orm-contexts";
import { RequestContext, TransactionContext } from "@mikro-orm/core";
import { ScopedAsyncLocalStorage } from "../../src/db/scoped-context";
import { registerCard, startHarness, uid, type Harness } from "../support/harness";

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

const storageOf = (c: unknown) => (c as { storage: ScopedAsyncLocalStorage<unknown> & { enabled?: boolean } }).storage;

describe("MikroORM's async contexts", () => {
  it("are scoped: on while a flush or transaction runs, off again after the writes of a card and a subscription", async () => {
    expect(ormContextsScoped()).toBe(true);
    expect(storageOf(TransactionContext)).toBeInstanceOf(ScopedAsyncLocalStorage);
    expect(storageOf(RequestContext)).toBeInstanceOf(ScopedAsyncLocalStorage);

    const customerUid = uid("ctx");
    await registerCard(h, customerUid);
    const r = await h.gql<{ startSubscription: { status: string } }>(
      `mutation($input: StartSubscriptionInput!) { startSubscription(input: $input) { status } }`,
      { input: { customerUid, name: "Contexts", amount: 1000, interval: "MONTH" } },
    );
    expect(r.errors).toBeUndefined();
    expect(r.data?.startSubscription.status).toBe("ACTIVE");
    // The first charge's webhook may still be processed (in a transaction) after the answer: wait for it.
    const deadline = Date.now() + 10_000;
    while (storageOf(TransactionContext).runsInProgress > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(storageOf(TransactionContext).runsInProgress).toBe(0);
    expect(storageOf(TransactionContext).enabled).toBe(false);
  });

  it("are only MikroORM's: node:async_hooks hands out the plain class again", async () => {
    const hooks = await import("node:async_hooks");
    expect(new hooks.AsyncLocalStorage()).not.toBeInstanceOf(ScopedAsyncLocalStorage);
  });
});
