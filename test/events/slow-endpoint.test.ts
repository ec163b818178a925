import { registerCard, uid, type Harness } from "../support/harness";
import { advanceTo, renewalUid, startSub, startSubHarness, unix, waitFor, type Sub } from "../subscriptions/helpers";
import { createEndpoint, eventually, startReceiver, type Receiver } from "./helpers";

/*
 * An endpoint that never answers holds only delivery attempts. Every attempt
 * this process may make at once is first left hanging on it; then a burst of
 * renewals falls due by the emulator's clock. Each renewal is paid, recorded
 * and its next period scheduled while those attempts still hang, and each
 * leaves its events waiting for delivery: the payment path never waits for
 * delivery.
 */

const SUBSCRIPTIONS = 20;
/** EVENT_DELIVERY_CONCURRENCY below: the attempts this process makes at once. */
const IN_FLIGHT = 2;

let h: Harness;
let receiver: Receiver;

beforeAll(async () => {
  // The longest attempt allowed: one that times out is followed by another that hangs too.
  h = await startSubHarness({ env: { EVENT_DELIVERY_TIMEOUT_MS: "60000", EVENT_DELIVERY_CONCURRENCY: String(IN_FLIGHT) } });
  receiver = await startReceiver(() => "hang");
});

afterAll(async () => {
  await receiver?.close();
  await h?.close();
});

async function pendingDeliveries(): Promise<number> {
  const [{ n }] = await h.sql<{ n: string }>(`select count(*) as n from event_deliveries where status = 'PENDING'`);
  return Number(n);
}

describe("an endpoint that hangs", () => {
  it("does not hold up a burst of renewals: all are paid and recorded while every delivery attempt hangs", async () => {
    // The burst's subscriptions, started before the endpoint exists (their first events are not for it).
    const subs: Sub[] = [];
    for (let i = 0; i < SUBSCRIPTIONS; i += 5) {
      subs.push(
        ...(await Promise.all(
          Array.from({ length: 5 }, async (_, j) => startSub(h, { customerUid: await registerCard(h, uid(`burst${i + j}`)), interval: "MONTH" })),
        )),
      );
    }
    expect(subs.map((s) => s.status)).toEqual(Array(SUBSCRIPTIONS).fill("ACTIVE"));

    await createEndpoint(h, receiver.url);
    // Two card registrations: their deliveries take every attempt this process may make at once, and hang.
    const hung = [await registerCard(h, uid("hung")), await registerCard(h, uid("hung"))];
    await receiver.waitFor((all) => all.length >= IN_FLIGHT);
    // The two deliveries run at once, so they may arrive in either order.
    const arrived = receiver.received.map((r) => [r.json.type, r.json.customerUid]);
    expect(arrived.sort()).toEqual(hung.map((c) => ["card.registered", c]).sort());
    expect(receiver.open()).toBe(IN_FLIGHT);

    // Every renewal falls due at once by Iamport's clock.
    const due = Math.max(...subs.map((s) => unix(s.nextPaymentAt!)));
    const advanced = await advanceTo(h, due + 10);
    const renewals = new Set(subs.map((s) => renewalUid(s.id, 2)));
    const executed = advanced.executed.filter((e) => renewals.has(e.merchant_uid));
    expect(executed.map((e) => e.status)).toEqual(Array(SUBSCRIPTIONS).fill("paid"));

    // Each renewal recorded: period 2 paid, period 3 scheduled, the subscription moved on.
    const ids = subs.map((s) => s.id);
    await waitFor(async () => {
      const rows = await h.sql<{ n: string }>(
        `select count(*) as n from payments p join subscriptions s on s.id = p.subscription_id
          where p.subscription_id in (${ids.map(() => "?").join(",")})
            and ((p.period = 2 and p.status = 'PAID') or (p.period = 3 and p.status = 'SCHEDULED' and s.next_merchant_uid = p.merchant_uid))`,
        ids,
      );
      return Number(rows[0].n) === 2 * SUBSCRIPTIONS;
    }, 60_000);

    // Meanwhile no attempt got an answer and nothing was delivered: the renewals did not wait for
    // any of them. (An attempt may end by its timeout on a slow machine: it ends unanswered, and the
    // next one hangs too; never more than IN_FLIGHT at once.)
    expect(receiver.open()).toBeLessThanOrEqual(IN_FLIGHT);
    const [{ n: answered }] = await h.sql<{ n: string }>(
      `select count(*) as n from event_deliveries where status <> 'PENDING' or last_status_code is not null or delivered_at is not null`,
    );
    expect(Number(answered)).toBe(0);
    // Every renewal's events (payment.paid, subscription.renewed) wait for delivery beside the two hung ones.
    const [{ n: renewalEvents }] = await h.sql<{ n: string }>(
      `select count(*) as n from events where type in ('payment.paid', 'subscription.renewed') and subscription_id in (${ids.map(() => "?").join(",")})
          and (type = 'subscription.renewed' or merchant_uid like '%\\_p2\\_a1')`,
      ids,
    );
    expect(Number(renewalEvents)).toBe(2 * SUBSCRIPTIONS);
    expect(await pendingDeliveries()).toBe(IN_FLIGHT + 2 * SUBSCRIPTIONS);
    await eventually(
      async () => h.server.metrics.registry.getSingleMetricAsString("billing_event_deliveries_pending"),
      (text) => new RegExp(`billing_event_deliveries_pending ${IN_FLIGHT + 2 * SUBSCRIPTIONS}\\b`).test(text),
    );
  });
});
