import { createLogger } from "../../src/logger";
import { Harness, registerCard, uid } from "../support/harness";
import { advancePastNextPayment, advanceTo, emulatorNow, getSub, startSub, startSubHarness, unix } from "./helpers";

const DAY = 86_400;
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

interface EventView {
  id: string;
  type: string;
  data: Record<string, unknown> & { notice: { kind: string; dueAt: string; sentAt: string }; chargeAt: string; amount: number };
}
async function events(subscriptionId: string, type: string): Promise<EventView[]> {
  const r = await h.client.request<{ events: { nodes: EventView[] } }>(`query($s: ID, $t: String) { events(subscriptionId: $s, type: $t, first: 50) { nodes { id type data } } }`, {
    s: subscriptionId,
    t: type,
  });
  return r.events.nodes.reverse();
}
interface NoticeView {
  id: string;
  kind: string;
  subscriptionId: string;
  dueAt: string;
  sentAt: string | null;
}
async function notices(subscriptionId: string): Promise<NoticeView[]> {
  const r = await h.client.request<{ subscription: { notices: NoticeView[] } }>(
    `query($id: ID!) { subscription(id: $id) { notices { id kind subscriptionId dueAt sentAt } } }`,
    { id: subscriptionId },
  );
  return r.subscription.notices;
}
async function startTrial(customerUid: string, trialDays: number): Promise<{ id: string; trialEnd: string }> {
  const r = await h.client.request<{ startSubscription: { id: string; trialEnd: string } }>(
    `mutation($c: String!, $d: Int) { startSubscription(input: {customerUid: $c, name: "Trial", amount: 8900, interval: MONTH, trialDays: $d}) { id trialEnd } }`,
    { c: customerUid, d: trialDays },
  );
  return r.startSubscription;
}
const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();

describe("the trial notice", () => {
  it("goes out TRIAL_NOTICE_DAYS (7) before trialEnd, once, with what the message must say", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const trial = await startTrial(customerUid, 14);
    const due = unix(trial.trialEnd) - 7 * DAY;
    expect(await notices(trial.id)).toEqual([{ id: expect.any(String), kind: "TRIAL_ENDING", subscriptionId: trial.id, dueAt: iso(due), sentAt: null }]);

    await advanceTo(h, due - 60);
    await h.server.reconciler.runOnce();
    expect(await events(trial.id, "subscription.trial_ending")).toEqual([]);

    await advanceTo(h, due + 10);
    await h.server.reconciler.runOnce();
    await h.server.reconciler.runOnce();
    const sent = await events(trial.id, "subscription.trial_ending");
    expect(sent).toHaveLength(1);
    expect(sent[0].data).toMatchObject({
      notice: { kind: "TRIAL_ENDING", dueAt: iso(due) },
      chargeAt: trial.trialEnd,
      trialEnd: trial.trialEnd,
      amount: 8900,
      currency: "KRW",
      paymentMethod: { cardNumberMasked: expect.stringMatching(/\*/) },
      cancel: { mutation: "cancelSubscription", subscriptionId: trial.id, before: trial.trialEnd },
      consent: { required: true, givenAt: null, windowOpensAt: iso(unix(trial.trialEnd) - 30 * DAY) },
      subscription: { id: trial.id, status: "TRIALING" },
    });
    expect(JSON.stringify(sent[0].data)).not.toMatch(/4242-?4242-?4242-?4242/);
    const shown = await notices(trial.id);
    expect(shown).toEqual([{ id: expect.any(String), kind: "TRIAL_ENDING", subscriptionId: trial.id, dueAt: iso(due), sentAt: expect.any(String) }]);
    expect(unix(shown[0].sentAt!)).toBeGreaterThanOrEqual(due);
  });

  it("is sent once when the server was down at its due time, also with several replicas sweeping at once", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const trial = await startTrial(customerUid, 10);
    const due = unix(trial.trialEnd) - 7 * DAY;
    // No reconciliation ran from before the due time until 4 days after it.
    await advanceTo(h, due + 4 * DAY);
    const now = new Date((await emulatorNow(h)) * 1000);
    // Each "replica" sweeps with its own EntityManager (its own connections on PostgreSQL).
    const log = createLogger({ level: "silent" });
    const replica = (n: number) => ({ em: h.server.orm.em.fork(), requestId: `replica-${n}`, log });
    const sentCounts = await Promise.all([1, 2, 3].map((n) => h.server.services.notices.sendDue(replica(n), now, 100)));
    expect(sentCounts.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
    await h.server.reconciler.runOnce();
    const sent = await events(trial.id, "subscription.trial_ending");
    expect(sent).toHaveLength(1);
    expect(sent[0].data.notice.dueAt).toBe(iso(due));
    expect(unix(sent[0].data.notice.sentAt)).toBe(unix(now));
    const rows = await h.sql<{ n: number }>(`select count(*)::int as n from notices where subscription_id = ?`, [trial.id]);
    expect(rows[0].n).toBe(1);
  });
});

describe("renewal notices", () => {
  it("go out RENEWAL_NOTICE_DAYS (7) before each renewal of a monthly subscription, once each; none for weekly ones", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, amount: 12_000, interval: "MONTH" });
    const weekly = await startSub(h, { customerUid: await registerCard(h, uid("c")), amount: 1_000, interval: "WEEK" });
    const first = unix(sub.nextPaymentAt!);
    expect((await notices(sub.id)).map((n) => [n.kind, n.dueAt, n.sentAt])).toEqual([["RENEWAL_UPCOMING", iso(first - 7 * DAY), null]]);

    await advanceTo(h, first - 7 * DAY + 10);
    await h.server.reconciler.runOnce();
    await h.server.reconciler.runOnce();
    let sent = await events(sub.id, "subscription.renewal_upcoming");
    expect(sent.map((e) => [e.data.chargeAt, e.data.amount])).toEqual([[sub.nextPaymentAt, 12_000]]);

    await advancePastNextPayment(h, sub);
    await h.server.reconciler.runOnce();
    const renewed = await getSub(h, sub.id);
    expect(renewed.status).toBe("ACTIVE");
    const second = unix(renewed.nextPaymentAt!);
    expect(second).toBeGreaterThan(first);
    await h.server.reconciler.runOnce();
    expect(await events(sub.id, "subscription.renewal_upcoming")).toHaveLength(1);

    await advanceTo(h, second - 7 * DAY + 10);
    await h.server.reconciler.runOnce();
    await h.server.reconciler.runOnce();
    sent = await events(sub.id, "subscription.renewal_upcoming");
    expect(sent.map((e) => e.data.chargeAt)).toEqual([sub.nextPaymentAt, renewed.nextPaymentAt]);
    expect((await notices(sub.id)).filter((n) => n.sentAt).map((n) => n.dueAt)).toEqual([iso(second - 7 * DAY), iso(first - 7 * DAY)]);
    expect(await events(weekly.id, "subscription.renewal_upcoming")).toEqual([]);
  });
});
