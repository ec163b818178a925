import { GOOD_CARD, REGISTER_CARD, startHarness, uid, type Harness } from "../support/harness";
import { createEndpoint, eventually, startReceiver, type Receiver } from "./helpers";

/*
 * An endpoint that never answers holds only delivery attempts: the changes
 * that record events (here card registrations, which record card.registered
 * in their transaction) are served while every attempt this process may make
 * at once hangs on it.
 */

let h: Harness;
let receiver: Receiver;

beforeAll(async () => {
  // Attempts hang far longer than this test runs, and two at most are in flight.
  h = await startHarness({ env: { EVENT_DELIVERY_TIMEOUT_MS: "60000", EVENT_DELIVERY_CONCURRENCY: "2" } });
  receiver = await startReceiver(() => "hang");
});

afterAll(async () => {
  await receiver?.close();
  await h?.close();
});

describe("an endpoint that hangs", () => {
  it("does not hold up the changes that record events", async () => {
    await createEndpoint(h, receiver.url);
    const first = uid("hung");
    await h.client.request(REGISTER_CARD, { input: { customerUid: first, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101" } });
    const second = uid("hung");
    await h.client.request(REGISTER_CARD, { input: { customerUid: second, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101" } });
    // Both attempts this process may make at once are now held by the endpoint.
    await receiver.waitFor((all) => all.length >= 2);

    const burst = Array.from({ length: 20 }, (_, i) => uid(`burst${i}`));
    const results = await Promise.allSettled(
      burst.map((customerUid) => h.client.request(REGISTER_CARD, { input: { customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101" } })),
    );
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    // Every registration recorded its event, waiting for its delivery.
    const [{ n }] = await h.sql<{ n: string }>(`select count(*) as n from event_deliveries where status = 'PENDING'`);
    expect(Number(n)).toBe(22);
    // Still only the two hung attempts reached the endpoint: the rest wait their turn, no payment waits for them.
    expect(receiver.received).toHaveLength(2);
    await eventually(
      async () => h.server.metrics.registry.getSingleMetricAsString("billing_event_deliveries_pending"),
      (text) => /billing_event_deliveries_pending 22/.test(text),
    );
  });
});
