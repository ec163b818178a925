import { Harness, registerCard, uid } from "../support/harness";
import { advancePastNextPayment, customerSchedules, getSub, paymentRows, renewalUid, startSub, startSubHarness, unix } from "./helpers";

/**
 * What the common renewal (a paid schedule webhook of an ACTIVE subscription)
 * writes beside the payment states the other subscription tests check: the
 * webhook event, the next charge's row and the subscription's pointers, and
 * that repeated deliveries leave one of each.
 */
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

interface EventRow {
  source: string;
  attempts: number;
  outcome: string | null;
  processed_at: unknown;
}

const events = (merchantUid: string) =>
  h.sql<EventRow>(`select source, attempts, outcome, processed_at from webhook_events where merchant_uid = ? order by id`, [merchantUid]);

describe("a renewal's bookkeeping", () => {
  let subId: string;
  let customerUid: string;

  beforeAll(async () => {
    customerUid = await registerCard(h, uid("book"));
    const sub = await startSub(h, { customerUid, interval: "DAY", amount: 4400, name: "Daily plan" });
    subId = sub.id;
    const r = await advancePastNextPayment(h, sub);
    expect(r.webhooks).toMatchObject({ delivered: 1, failed: 0 });
  });

  it("settles the webhook event once", async () => {
    const rows = await events(renewalUid(subId, 2));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ source: "schedule-callback", attempts: 1, outcome: "PAID" });
    expect(rows[0].processed_at).not.toBeNull();
  });

  it("writes the next charge as the subscription's, SCHEDULED at the time Iamport holds, and points the subscription at it", async () => {
    const [next] = await h.sql<{
      status: string;
      kind: string;
      amount: number;
      name: string;
      customer_uid: string;
      currency: string;
      checked_at: unknown;
      scheduled_at: string;
    }>(`select status, kind, amount, name, customer_uid, currency, checked_at, scheduled_at from payments where merchant_uid = ?`, [renewalUid(subId, 3)]);
    expect(next).toMatchObject({ status: "SCHEDULED", kind: "SCHEDULE", amount: 4400, name: "Daily plan", customer_uid: customerUid, currency: "KRW" });
    expect(next.checked_at).not.toBeNull();
    const [sub] = await h.sql<{ next_merchant_uid: string; next_payment_at: string; current_period: number; status: string; status_reason: string | null }>(
      `select next_merchant_uid, next_payment_at, current_period, status, status_reason from subscriptions where id = ?`,
      [subId],
    );
    expect(sub).toMatchObject({ next_merchant_uid: renewalUid(subId, 3), current_period: 2, status: "ACTIVE", status_reason: null });
    expect(new Date(sub.next_payment_at).getTime()).toBe(new Date(next.scheduled_at).getTime());
    const live = await customerSchedules(h, customerUid, "scheduled");
    expect(live.map((s) => [s.merchant_uid, s.schedule_at])).toEqual([[renewalUid(subId, 3), unix(next.scheduled_at)]]);
    const api = await getSub(h, subId);
    expect(api.nextPaymentAt).toBe(new Date(next.scheduled_at).toISOString());
  });

  it("answers redeliveries of that webhook without a second next charge or schedule, each one recorded and settled", async () => {
    const [paid] = await h.sql<{ imp_uid: string }>(`select imp_uid from payments where merchant_uid = ?`, [renewalUid(subId, 2)]);
    const r = await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: paid.imp_uid, times: 3, concurrency: 3 });
    expect(r.status).toBe(200);
    const rows = await events(renewalUid(subId, 2));
    expect(rows).toHaveLength(4);
    for (const e of rows) {
      expect(e.attempts).toBe(1);
      expect(e.processed_at).not.toBeNull();
    }
    const payments = await paymentRows(h, subId);
    expect(payments.map((p) => [p.period, p.attempt, p.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "PAID"],
      [3, 1, "SCHEDULED"],
    ]);
    expect((await customerSchedules(h, customerUid, "scheduled")).map((s) => s.merchant_uid)).toEqual([renewalUid(subId, 3)]);
  });
});

describe("a next charge whose merchant_uid another order holds", () => {
  it("is never adopted: the renewal settles, nothing is scheduled under that merchant_uid, and the other order stays as it was", async () => {
    const customerUid = await registerCard(h, uid("taken"));
    const sub = await startSub(h, { customerUid, interval: "DAY", amount: 4400, name: "Daily plan" });
    // Written past the API (the reserved prefix keeps callers off these merchant_uids): an order of no subscription.
    await h.sql(
      `insert into payments (merchant_uid, name, amount, cancelled_amount, currency, status, kind, created_at, updated_at) values (?, 'Other order', 1000, 0, 'KRW', 'PENDING', 'CHECKOUT', now(), now())`,
      [renewalUid(sub.id, 3)],
    );
    // Other tests' subscriptions of this file may fall due too: only failures matter here.
    const r = await advancePastNextPayment(h, sub);
    expect(r.webhooks.failed).toBe(0);

    const payments = await paymentRows(h, sub.id);
    expect(payments.map((p) => [p.period, p.attempt, p.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "PAID"],
    ]);
    const taken = await h.sql<{ name: string; amount: number; status: string; subscription_id: string | null }>(
      `select name, amount, status, subscription_id from payments where merchant_uid = ?`,
      [renewalUid(sub.id, 3)],
    );
    expect(taken).toEqual([{ name: "Other order", amount: 1000, status: "PENDING", subscription_id: null }]);
    const [row] = await h.sql<{ next_merchant_uid: string | null; current_period: number }>(`select next_merchant_uid, current_period from subscriptions where id = ?`, [sub.id]);
    expect(row).toMatchObject({ next_merchant_uid: null, current_period: 2 });
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
    expect(h.logs.some((l) => l.includes("belongs to another order") && l.includes(renewalUid(sub.id, 3)))).toBe(true);
  });
});
