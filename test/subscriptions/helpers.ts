import { Harness, HarnessOptions, startHarness } from "../support/harness";

/**
 * The harness for subscription tests: rate limits off, because driving a
 * year of renewals asks the API far more often than any merchant would.
 */
export function startSubHarness(opts: HarnessOptions = {}): Promise<Harness> {
  return startHarness({ ...opts, env: { RATE_LIMIT_PER_MINUTE: "0", RATE_LIMIT_PUBLIC_PER_MINUTE: "0", ...opts.env } });
}

export const SUB_FIELDS = `id customerUid name amount interval intervalCount status statusReason currentPeriodStart currentPeriodEnd nextPaymentAt cancelAtPeriodEnd canceledAt createdAt updatedAt`;

export const START = /* GraphQL */ `
  mutation Start($input: StartSubscriptionInput!) { startSubscription(input: $input) { ${SUB_FIELDS} } }
`;
export const CANCEL = /* GraphQL */ `
  mutation Cancel($input: CancelSubscriptionInput!) { cancelSubscription(input: $input) { ${SUB_FIELDS} } }
`;
export const GET = /* GraphQL */ `
  query Sub($id: ID!) { subscription(id: $id) { ${SUB_FIELDS} } }
`;

export interface Sub {
  id: string;
  customerUid: string;
  status: string;
  statusReason: string | null;
  interval: string;
  intervalCount: number;
  currentPeriodStart: string | null;
  currentPeriodEnd: string | null;
  nextPaymentAt: string | null;
  cancelAtPeriodEnd: boolean;
  canceledAt: string | null;
}

export interface StartInput {
  customerUid: string;
  name?: string;
  amount?: number;
  interval?: "DAY" | "WEEK" | "MONTH" | "YEAR";
  intervalCount?: number;
  startAt?: string;
}

export async function startSub(h: Harness, input: StartInput): Promise<Sub> {
  const { startSubscription } = await h.client.request<{ startSubscription: Sub }>(START, {
    input: { name: "Plan", amount: 9900, interval: "MONTH", ...input },
  });
  return startSubscription;
}

export async function getSub(h: Harness, id: string): Promise<Sub> {
  const { subscription } = await h.client.request<{ subscription: Sub }>(GET, { id });
  return subscription;
}

export async function cancelSub(h: Harness, id: string, atPeriodEnd = false): Promise<Sub> {
  const { cancelSubscription } = await h.client.request<{ cancelSubscription: Sub }>(CANCEL, { input: { id, atPeriodEnd } });
  return cancelSubscription;
}

export interface PaymentRow {
  merchant_uid: string;
  imp_uid: string | null;
  status: string;
  kind: string;
  period: number;
  attempt: number;
  amount: number;
  scheduled_at: Date | null;
  paid_at: Date | null;
  failed_at: Date | null;
  fail_reason: string | null;
}

/** The subscription's payment rows in (period, attempt) order, straight from the database. */
export async function paymentRows(h: Harness, subscriptionId: string): Promise<PaymentRow[]> {
  const rows = await h.sql<PaymentRow>(
    `select merchant_uid, imp_uid, status, kind, period, attempt, amount, scheduled_at, paid_at, failed_at, fail_reason
       from payments where subscription_id = ? order by period, attempt`,
    [subscriptionId],
  );
  return rows.map((r) => ({ ...r, scheduled_at: toDate(r.scheduled_at), paid_at: toDate(r.paid_at), failed_at: toDate(r.failed_at) }));
}

function toDate(v: unknown): Date | null {
  return v === null || v === undefined ? null : new Date(v as string);
}

export interface IamportScheduleWire {
  merchant_uid: string;
  customer_uid: string;
  imp_uid: string | null;
  schedule_at: number;
  schedule_status: "scheduled" | "executed" | "revoked";
  payment_status: string | null;
  amount: number;
}

/**
 * GET on the emulator's Iamport API with a fresh token; once more with a new
 * one when the clock moved past the token's expiry meanwhile (a concurrent advance).
 */
async function iamportGet(h: Harness, path: string, params?: Record<string, unknown>) {
  for (let i = 0; ; i++) {
    const token = await h.iamportToken();
    const r = await h.emu.get(path, { headers: { Authorization: token }, params });
    if (r.status !== 401 || i >= 2) return r;
  }
}

/** One schedule as Iamport (the emulator) has it; null when it has none. */
export async function iamportSchedule(h: Harness, merchantUid: string): Promise<IamportScheduleWire | null> {
  const r = await iamportGet(h, `/subscribe/payments/schedule/${encodeURIComponent(merchantUid)}`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`schedule lookup failed: ${r.status} ${JSON.stringify(r.data)}`);
  return r.data.response as IamportScheduleWire;
}

/** Windows shorter than Iamport's three-month limit on schedule listings. */
const SCHEDULE_WINDOW_SECONDS = 89 * 86_400;
/** How far from Iamport's clock the tests' schedules lie (yearly plans, clocks moved by months). */
const SCHEDULE_SCAN_SECONDS = 3 * 365 * 86_400;

/**
 * Every schedule Iamport holds for a customer within three years of its clock,
 * newest first, optionally of one status: window by window (Iamport lists at
 * most three months at a time), every page.
 */
export async function customerSchedules(
  h: Harness,
  customerUid: string,
  status?: "scheduled" | "executed" | "revoked",
): Promise<IamportScheduleWire[]> {
  const now = await emulatorNow(h);
  const out: IamportScheduleWire[] = [];
  for (let to = now + SCHEDULE_SCAN_SECONDS; to > now - SCHEDULE_SCAN_SECONDS; to -= SCHEDULE_WINDOW_SECONDS) {
    for (let page = 1; ; page++) {
      const r = await iamportGet(h, `/subscribe/payments/schedule/customers/${encodeURIComponent(customerUid)}`, {
        from: to - SCHEDULE_WINDOW_SECONDS,
        to,
        page,
        ...(status ? { "schedule-status": status } : {}),
      });
      if (r.status !== 200) throw new Error(`customer schedules failed: ${r.status} ${JSON.stringify(r.data)}`);
      out.push(...(r.data.response.list as IamportScheduleWire[]));
      if (!r.data.response.next) break;
    }
  }
  return out;
}

/** Payments Iamport made for an order (merchant_uid): its latest, or null. */
export async function iamportPaymentByOrder(h: Harness, merchantUid: string): Promise<{ imp_uid: string; status: string; amount: number } | null> {
  const r = await iamportGet(h, `/payments/find/${encodeURIComponent(merchantUid)}`);
  if (r.status === 404) return null;
  return r.data.response;
}

export async function emulatorNow(h: Harness): Promise<number> {
  const r = await h.emu.get("/__emulator/clock");
  return r.data.now as number;
}

/** Moves the emulator's clock to `unixSeconds` (never backwards) and waits for the webhooks it caused. */
export async function advanceTo(h: Harness, unixSeconds: number): ReturnType<Harness["advance"]> {
  const now = await emulatorNow(h);
  return h.advance(Math.max(0, unixSeconds - now));
}

/** Moves the emulator's clock to `seconds` after the subscription's next payment time. */
export async function advancePastNextPayment(h: Harness, sub: Pick<Sub, "nextPaymentAt">, seconds = 10): ReturnType<Harness["advance"]> {
  if (!sub.nextPaymentAt) throw new Error("the subscription has no next payment");
  return advanceTo(h, Math.floor(new Date(sub.nextPaymentAt).getTime() / 1000) + seconds);
}

export function unix(d: Date | string): number {
  return Math.floor(new Date(d).getTime() / 1000);
}

/** An instant written in Korean time, e.g. "2027-02-28T10:00". */
export function seoul(d: Date | string | null): string | null {
  if (d === null) return null;
  return new Date(new Date(d).getTime() + 9 * 3600_000).toISOString().slice(0, 16);
}

export function renewalUid(subscriptionId: string, period: number, attempt = 1): string {
  return `sub_${subscriptionId}_p${period}_a${attempt}`;
}

/** Polls `fn` until it returns a truthy value or the time is up (a bound for a loaded machine, never the behaviour). */
export async function waitFor<T>(fn: () => Promise<T>, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error("waitFor: timed out");
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Waits until the emulator holds the answer of a call (a "hold" fault set with
 * POST /__emulator/faults) and returns its id, for POST /__emulator/faults/release.
 */
export async function heldCall(h: Harness, route?: RegExp): Promise<number> {
  const id = await waitFor(async () => {
    const held = (await h.emu.get<{ held: { id: number; method: string; path: string }[] }>("/__emulator/faults/held")).data.held;
    return held.find((c) => !route || route.test(`${c.method} ${c.path}`))?.id;
  }, 20_000, 20);
  return id!;
}

export async function release(h: Harness, id: number): Promise<void> {
  expect((await h.emu.post("/__emulator/faults/release", { id })).data).toEqual({ released: 1 });
}

/**
 * Waits until the emulator finished delivering (or failed to deliver) a webhook
 * for each of these orders: a charge's webhook goes out in the background, and
 * a drop_webhook fault must not catch it instead of the one a test means.
 */
export async function webhooksSettled(h: Harness, merchantUids: string[]): Promise<void> {
  await waitFor(async () => {
    const r = await h.emu.get("/__emulator/webhooks");
    const entries = r.data.webhooks as { body: { merchant_uid?: string }; outcome: string; attempts: number }[];
    return merchantUids.every((m) => entries.some((e) => e.body.merchant_uid === m && e.attempts > 0 && e.outcome !== "dropped"));
  });
}

/** How many payments Iamport (the emulator) has made in all: the delta over a scenario counts its charges. */
export async function emulatorPaymentCount(h: Harness): Promise<number> {
  const r = await h.emu.get("/__emulator/health");
  return r.data.payments as number;
}

/**
 * Makes the server's open work look `seconds` older (on the server's own clock,
 * which the emulator cannot move): PENDING payments and unprocessed webhook
 * events, so that reconciliation's grace periods for calls in flight are over.
 */
export async function ageOpenWork(h: Harness, seconds: number): Promise<void> {
  await h.sql(`update payments set created_at = created_at - make_interval(secs => ?) where status = 'PENDING'`, [seconds]);
  await h.sql(`update webhook_events set received_at = received_at - make_interval(secs => ?) where processed_at is null`, [seconds]);
}

/** Exactly one PAID payment for period 2, one next (period 3) in the database and exactly one pending schedule at Iamport. */
export async function expectRenewedOnce(h: Harness, sub: Sub): Promise<void> {
  const rows = await paymentRows(h, sub.id);
  expect(rows.map((r) => [r.period, r.attempt, r.status])).toEqual([
    [1, 1, "PAID"],
    [2, 1, "PAID"],
    [3, 1, "SCHEDULED"],
  ]);
  const scheduled = await customerSchedules(h, sub.customerUid, "scheduled");
  expect(scheduled.map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
  expect(await customerSchedules(h, sub.customerUid)).toHaveLength(2); // p2 executed, p3 scheduled
  const now = await getSub(h, sub.id);
  expect(now).toMatchObject({ status: "ACTIVE", currentPeriodStart: sub.currentPeriodEnd });
  expect(now.nextPaymentAt).toBe(new Date(scheduled[0].schedule_at * 1000).toISOString());
}

/** Lets Iamport run the subscriptions' next payments while their webhooks are lost; returns each one's imp_uid. */
export async function runRenewalsSilently(h: Harness, subs: Sub[]): Promise<Map<string, string>> {
  await webhooksSettled(
    h,
    subs.map((s) => renewalUid(s.id, 1)),
  );
  await h.emu.post("/__emulator/faults", { mode: "drop_webhook", times: subs.length });
  const due = Math.max(...subs.map((s) => unix(s.nextPaymentAt!)));
  const r = await advanceTo(h, due + 10);
  const byUid = new Map(r.executed.map((e) => [e.merchant_uid, e.imp_uid]));
  const out = new Map<string, string>();
  for (const s of subs) {
    const impUid = byUid.get(renewalUid(s.id, 2));
    expect(impUid).toEqual(expect.any(String));
    out.set(s.id, impUid!);
    // Not heard of yet.
    expect((await paymentRows(h, s.id)).find((p) => p.period === 2)?.status).toBe("SCHEDULED");
  }
  return out;
}
