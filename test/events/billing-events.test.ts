import { registerCard, TEST_CARDS, uid, type Harness } from "../support/harness";
import { advancePastNextPayment, cancelSub, getSub, heldCall, release, renewalUid, START, startSub, startSubHarness } from "../subscriptions/helpers";

/*
 * The billing core records an event for every change it makes, in the
 * transaction of the change: a first charge, a renewal, a declined renewal,
 * a cancellation, a refund and a one-off charge each leave exactly the events
 * of what changed, in the order it happened, with the object as the API shows
 * it after the change.
 */

let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

interface Ev {
  type: string;
  customerUid: string | null;
  subscriptionId: string | null;
  merchantUid: string | null;
  data: Record<string, unknown>;
}

/** The customer's events, oldest first (the list is newest first by event id), card events left out. */
async function eventsOf(customerUid: string): Promise<Ev[]> {
  const { events } = await h.client.request<{ events: { nodes: Ev[] } }>(
    `query($c: String) { events(customerUid: $c, first: 100) { nodes { type customerUid subscriptionId merchantUid data } } }`,
    { c: customerUid },
  );
  return events.nodes.filter((e) => !e.type.startsWith("card.")).reverse();
}

const types = (evs: Ev[]) => evs.map((e) => [e.type, e.merchantUid]);

describe("events of the billing core", () => {
  it("a subscription charged at once and renewed: started with its first payment, then renewed with the renewal", async () => {
    const customerUid = await registerCard(h, uid("ev-renew"));
    const sub = await startSub(h, { customerUid, interval: "DAY" });
    expect(sub.status).toBe("ACTIVE");
    const first = renewalUid(sub.id, 1);
    expect(types(await eventsOf(customerUid))).toEqual([
      ["payment.paid", first],
      ["subscription.started", null],
    ]);
    const r = await advancePastNextPayment(h, await getSub(h, sub.id));
    expect(r.executed.filter((e) => e.merchant_uid === renewalUid(sub.id, 2)).map((e) => e.status)).toEqual(["paid"]);
    const evs = await eventsOf(customerUid);
    expect(types(evs)).toEqual([
      ["payment.paid", first],
      ["subscription.started", null],
      ["payment.paid", renewalUid(sub.id, 2)],
      ["subscription.renewed", null],
    ]);
    // The data is the object after the change, as the API shows it.
    expect(evs[2].data).toMatchObject({ merchantUid: renewalUid(sub.id, 2), status: "PAID", amount: 9900, subscriptionId: sub.id });
    expect(evs[3].data).toMatchObject({ id: sub.id, status: "ACTIVE" });
    expect(evs.every((e) => e.subscriptionId === sub.id && e.customerUid === customerUid)).toBe(true);
  });

  it("a renewal declined softly: payment.failed, then subscription.past_due; a cancellation then: subscription.canceled", async () => {
    const customerUid = await registerCard(h, uid("ev-decline"), TEST_CARDS.firstOkThenSoftDeclines);
    const sub = await startSub(h, { customerUid, interval: "DAY" });
    const r = await advancePastNextPayment(h, await getSub(h, sub.id));
    // The clock is shared: other tests' renewals may run in the same advance.
    expect(r.executed.filter((e) => e.merchant_uid === renewalUid(sub.id, 2)).map((e) => e.status)).toEqual(["failed"]);
    expect((await getSub(h, sub.id)).status).toBe("PAST_DUE");
    expect(types(await eventsOf(customerUid))).toEqual([
      ["payment.paid", renewalUid(sub.id, 1)],
      ["subscription.started", null],
      ["payment.failed", renewalUid(sub.id, 2)],
      ["subscription.past_due", null],
    ]);
    const canceled = await cancelSub(h, sub.id);
    expect(canceled.status).toBe("CANCELED");
    const evs = await eventsOf(customerUid);
    expect(types(evs).slice(4)).toEqual([["subscription.canceled", null]]);
    expect(evs[4].data).toMatchObject({ id: sub.id, status: "CANCELED" });
  });

  it("a cancellation at the period's end: subscription.cancel_scheduled, and no second event when repeated", async () => {
    const customerUid = await registerCard(h, uid("ev-endcancel"));
    const sub = await startSub(h, { customerUid, interval: "MONTH" });
    const after = await cancelSub(h, sub.id, true);
    expect([after.status, after.cancelAtPeriodEnd]).toEqual(["ACTIVE", true]);
    await cancelSub(h, sub.id, true);
    expect(types(await eventsOf(customerUid)).slice(2)).toEqual([["subscription.cancel_scheduled", null]]);
  });

  it("a subscription started with startAt: subscription.started once its first charge is scheduled, nothing paid yet", async () => {
    const customerUid = await registerCard(h, uid("ev-startat"));
    const startAt = new Date(Date.now() + 3 * 24 * 3600_000).toISOString();
    const sub = await startSub(h, { customerUid, startAt });
    expect(types(await eventsOf(customerUid))).toEqual([["subscription.started", null]]);
    expect((await eventsOf(customerUid))[0].data).toMatchObject({ id: sub.id, status: "ACTIVE" });
  });

  it("a subscription started with startAt: subscription.started commits with the subscription's row, before Iamport is asked", async () => {
    const customerUid = await registerCard(h, uid("ev-startat-tx"));
    // Iamport registers the first charge but its answer is held: the state a crash at that moment leaves.
    expect((await h.emu.post("/__emulator/faults", { route: "POST /subscribe/payments/schedule", mode: "hold", times: 1 })).status).toBe(201);
    const startAt = new Date(Date.now() + 3 * 24 * 3600_000).toISOString();
    const starting = startSub(h, { customerUid, startAt });
    const held = await heldCall(h, /schedule/);
    const rows = await h.sql<{ id: string; status: string; same_tx: boolean }>(
      `select s.id, s.status, s.xmin::text = e.xmin::text as same_tx
         from subscriptions s join events e on e.subscription_id = s.id and e.type = 'subscription.started'
        where s.customer_uid = ?`,
      [customerUid],
    );
    // Written by one transaction: the row and its event exist together or not at all.
    expect(rows).toEqual([{ id: expect.any(String), status: "ACTIVE", same_tx: true }]);
    await release(h, held);
    const sub = await starting;
    expect(sub.id).toBe(rows[0].id);
    // Scheduling it records nothing more: the event was the subscription's start.
    expect(types(await eventsOf(customerUid))).toEqual([["subscription.started", null]]);
  });

  it("a startAt that Iamport refuses: the subscription it removes ends with subscription.canceled after its subscription.started", async () => {
    const customerUid = await registerCard(h, uid("ev-startat-refused"));
    // Iamport's clock runs ten days ahead of this server's: tomorrow is in Iamport's past.
    await h.advance(10 * 86_400);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    const r = await h.gql(START, { input: { customerUid, name: "x", amount: 1000, interval: "MONTH", startAt: tomorrow } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "startAt" });
    expect(await h.sql(`select id from subscriptions where customer_uid = ?`, [customerUid])).toEqual([]);
    const evs = await eventsOf(customerUid);
    expect(types(evs)).toEqual([
      ["subscription.started", null],
      ["subscription.canceled", null],
    ]);
    expect(evs[1].data).toMatchObject({ id: evs[0].subscriptionId, status: "CANCELED", nextPaymentAt: null });
  });

  it("a one-off charge and its refunds: payment.paid, then payment.refunded for each partial refund", async () => {
    const customerUid = await registerCard(h, uid("ev-refund"));
    const merchantUid = uid("ev-order");
    await h.client.request(`mutation($i: ChargeAgainInput!) { chargeAgain(input: $i) { status } }`, {
      i: { customerUid, merchantUid, amount: 10000, name: "한 번 결제" },
    });
    const refund = (amount: number) =>
      h.client.request(`mutation($i: RefundPaymentInput!) { refundPayment(input: $i) { cancelledAmount } }`, {
        i: { merchantUid, amount, reason: "부분 환불" },
      });
    await refund(3000);
    await refund(7000);
    const evs = await eventsOf(customerUid);
    expect(types(evs)).toEqual([
      ["payment.paid", merchantUid],
      ["payment.refunded", merchantUid],
      ["payment.refunded", merchantUid],
    ]);
    expect(evs.map((e) => e.data.cancelledAmount)).toEqual([0, 3000, 10000]);
    expect(evs[0].subscriptionId).toBeNull();
  });
});
