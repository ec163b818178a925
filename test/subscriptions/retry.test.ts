import { Harness, registerCard, TEST_CARDS, uid } from "../support/harness";
import {
  advancePastNextPayment,
  advanceTo,
  customerSchedules,
  emulatorPaymentCount,
  getSub,
  iamportSchedule,
  paymentRows,
  renewalUid,
  startSub,
  startSubHarness,
  Sub,
  SUB_FIELDS,
  unix,
  webhooksSettled,
} from "./helpers";

/**
 * retrySubscriptionPayment: a PAST_DUE or UNPAID subscription charged now,
 * typically after the customer registered a new card; its dunning retries
 * revoked at Iamport, the anchor kept, and a repeat never charging twice.
 */
let h: Harness;
beforeAll(async () => {
  // One retry a day after a decline: a second decline makes the subscription UNPAID.
  h = await startSubHarness({ env: { RETRY_SCHEDULE: "1d" } });
});
afterAll(async () => {
  await h?.close();
});

const RETRY = `mutation R($id: ID!) { retrySubscriptionPayment(id: $id) { ${SUB_FIELDS} } }`;

async function retry(id: string): Promise<Sub> {
  return (await h.client.request<{ retrySubscriptionPayment: Sub }>(RETRY, { id })).retrySubscriptionPayment;
}

/** A weekly subscription whose first renewal was declined: PAST_DUE, retry 2 scheduled at Iamport. */
async function pastDue(): Promise<Sub> {
  const customerUid = await registerCard(h, uid("rt"));
  const sub = await startSub(h, { customerUid, interval: "WEEK" });
  await webhooksSettled(h, [renewalUid(sub.id, 1)]);
  await registerCard(h, customerUid, TEST_CARDS.insufficient, { replace: true });
  await advancePastNextPayment(h, sub);
  const now = await getSub(h, sub.id);
  expect(now.status).toBe("PAST_DUE");
  expect((await iamportSchedule(h, renewalUid(sub.id, 2, 2)))?.schedule_status).toBe("scheduled");
  return { ...sub, ...now };
}

describe("retrySubscriptionPayment", () => {
  it("after a new card: ACTIVE at once on the anchor's boundaries, the dunning retry revoked, a repeat charging nothing", async () => {
    const sub = await pastDue();
    await registerCard(h, sub.customerUid, undefined, { replace: true });
    const before = await emulatorPaymentCount(h);

    const retried = await retry(sub.id);
    expect(retried).toMatchObject({ status: "ACTIVE", statusReason: null });
    // The second period keeps the anchor's boundaries: it started when the renewal was due, not now.
    expect(retried.currentPeriodStart).toBe(sub.currentPeriodEnd);
    expect(retried.nextPaymentAt).toBe(retried.currentPeriodEnd);
    expect((await iamportSchedule(h, renewalUid(sub.id, 2, 2)))?.schedule_status).toBe("revoked");
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.attempt, r.status, r.kind])).toEqual([
      [1, 1, "PAID", "AGAIN"],
      [2, 1, "FAILED", "SCHEDULE"],
      [2, 2, "REVOKED", "SCHEDULE"],
      [2, 3, "PAID", "AGAIN"],
      [3, 1, "SCHEDULED", "SCHEDULE"],
    ]);
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
    expect(await emulatorPaymentCount(h)).toBe(before + 1);

    // Repeated: nothing more is charged.
    expect(await retry(sub.id)).toMatchObject({ status: "ACTIVE", currentPeriodStart: retried.currentPeriodStart });
    expect(await emulatorPaymentCount(h)).toBe(before + 1);
    // The revoked retry's time passes without a charge; the next renewal runs on the anchor's boundary.
    const r = await advanceTo(h, unix(retried.nextPaymentAt!) + 10);
    expect(r.executed.filter((e) => e.merchant_uid.includes(sub.id)).map((e) => [e.merchant_uid, e.status])).toEqual([[renewalUid(sub.id, 3), "paid"]]);
  });

  it("two retries at once make one charge", async () => {
    const sub = await pastDue();
    await registerCard(h, sub.customerUid, undefined, { replace: true });
    const before = await emulatorPaymentCount(h);
    const answers = await Promise.all([retry(sub.id), retry(sub.id)]);
    expect(await emulatorPaymentCount(h)).toBe(before + 1);
    expect((await getSub(h, sub.id)).status).toBe("ACTIVE");
    for (const a of answers) expect(["ACTIVE", "PAST_DUE"]).toContain(a.status);
    expect((await paymentRows(h, sub.id)).filter((r) => r.status === "PAID").map((r) => [r.period, r.attempt])).toEqual([
      [1, 1],
      [2, 3],
    ]);
  });

  it("declined again: it counts as a dunning attempt (here the last one, so UNPAID), with nothing left scheduled", async () => {
    const sub = await pastDue();
    const declined = await retry(sub.id);
    expect(declined.status).toBe("UNPAID");
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.attempt, r.status])).toEqual([
      [1, 1, "PAID"],
      [2, 1, "FAILED"],
      [2, 2, "REVOKED"],
      [2, 3, "FAILED"],
    ]);

    // UNPAID, then a new card: retried into ACTIVE.
    await registerCard(h, sub.customerUid, undefined, { replace: true });
    const recovered = await retry(sub.id);
    expect(recovered).toMatchObject({ status: "ACTIVE", currentPeriodStart: sub.currentPeriodEnd });
    expect((await paymentRows(h, sub.id)).filter((r) => r.status === "PAID").map((r) => [r.period, r.attempt])).toEqual([
      [1, 1],
      [2, 4],
    ]);
  });

  it("answers an ACTIVE subscription as it is, and refuses a CANCELED one", async () => {
    const customerUid = await registerCard(h, uid("rt"));
    const sub = await startSub(h, { customerUid, interval: "MONTH" });
    const before = await emulatorPaymentCount(h);
    expect(await retry(sub.id)).toMatchObject({ status: "ACTIVE", currentPeriodStart: sub.currentPeriodStart });
    expect(await emulatorPaymentCount(h)).toBe(before);
    await h.client.request(`mutation($id: ID!) { cancelSubscription(input: { id: $id }) { id } }`, { id: sub.id });
    const r = await h.gql(RETRY, { id: sub.id });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "id" });
  });
});
