import { Harness, registerCard, uid } from "../support/harness";
import {
  advancePastNextPayment,
  advanceTo,
  ageOpenWork,
  cancelSub,
  customerSchedules,
  emulatorNow,
  getSub,
  paymentRows,
  renewalUid,
  startSub,
  startSubHarness,
  unix,
} from "./helpers";

/**
 * A billing key is not deleted from under live subscriptions, and a charge
 * Iamport refuses to schedule (its key deleted at Iamport) is settled FAILED
 * with Iamport's reason instead of waiting PENDING for reconciliation forever.
 */
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.emu.delete("/__emulator/faults");
});

const DAY = 86_400;
const DELETE = /* GraphQL */ `
  mutation Delete($customerUid: String!, $cancelSubscriptions: Boolean) {
    deleteCard(customerUid: $customerUid, cancelSubscriptions: $cancelSubscriptions) { customerUid status }
  }
`;

async function keyAtIamport(customerUid: string): Promise<number> {
  const token = await h.iamportToken();
  return (await h.emu.get(`/subscribe/customers/${encodeURIComponent(customerUid)}`, { headers: { Authorization: token } })).status;
}

async function deleteKeyAtIamport(customerUid: string): Promise<void> {
  const token = await h.iamportToken();
  const r = await h.emu.delete(`/subscribe/customers/${encodeURIComponent(customerUid)}`, { headers: { Authorization: token } });
  expect(r.data.code).toBe(0);
}

async function cardStatus(customerUid: string): Promise<string> {
  const [row] = await h.sql<{ status: string }>(`select status from cards where customer_uid = ?`, [customerUid]);
  return row.status;
}

describe("deleteCard with live subscriptions", () => {
  it("is refused with CONFLICT naming them, and nothing changes; with cancelSubscriptions they are canceled and the key deleted", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const now = await startSub(h, { customerUid, interval: "MONTH" });
    const later = await startSub(h, { customerUid, name: "Weekly", interval: "WEEK", startAt: new Date(((await emulatorNow(h)) + 2 * DAY) * 1000).toISOString() });
    const ended = await startSub(h, { customerUid, name: "Ended", interval: "MONTH" });
    await cancelSub(h, ended.id);
    const live = [now.id, later.id].sort();

    for (const variables of [{ customerUid }, { customerUid, cancelSubscriptions: false }]) {
      const r = await h.gql(DELETE, variables);
      expect(r.data).toBeNull();
      expect(r.errors?.[0].extensions).toMatchObject({ code: "CONFLICT", subscriptionIds: live });
      for (const id of live) expect(r.errors?.[0].message).toContain(id);
      expect(r.errors?.[0].message).not.toContain(ended.id);
    }
    // Nothing was done: the card, the key at Iamport, the subscriptions and their schedules are as they were.
    expect(await cardStatus(customerUid)).toBe("ACTIVE");
    expect(await keyAtIamport(customerUid)).toBe(200);
    expect((await getSub(h, now.id)).status).toBe("ACTIVE");
    expect((await getSub(h, later.id)).status).toBe("ACTIVE");
    expect((await customerSchedules(h, customerUid, "scheduled")).map((s) => s.merchant_uid).sort()).toEqual(
      [renewalUid(now.id, 2), renewalUid(later.id, 1)].sort(),
    );

    const { deleteCard } = await h.client.request<{ deleteCard: { status: string } }>(DELETE, { customerUid, cancelSubscriptions: true });
    expect(deleteCard.status).toBe("DELETED");
    expect(await keyAtIamport(customerUid)).toBe(404);
    for (const id of live) expect(await getSub(h, id)).toMatchObject({ status: "CANCELED", nextPaymentAt: null });
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);
    expect((await paymentRows(h, now.id)).map((p) => [p.period, p.status])).toEqual([
      [1, "PAID"],
      [2, "REVOKED"],
    ]);
    expect((await paymentRows(h, later.id)).map((p) => [p.period, p.status])).toEqual([[1, "REVOKED"]]);
  });

  it("cancelSubscriptions ends a subscription whose renewal was paid at that period's end, with nothing scheduled", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const sub = await startSub(h, { customerUid, interval: "WEEK" });
    await advancePastNextPayment(h, sub);
    const renewed = await getSub(h, sub.id);
    expect(renewed.currentPeriodStart).toBe(sub.currentPeriodEnd);

    await h.client.request(DELETE, { customerUid, cancelSubscriptions: true });
    expect(await keyAtIamport(customerUid)).toBe(404);
    expect(await getSub(h, sub.id)).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodEnd: renewed.currentPeriodEnd, nextPaymentAt: null });
    expect(await customerSchedules(h, customerUid, "scheduled")).toEqual([]);

    const r = await advanceTo(h, unix(renewed.currentPeriodEnd!) + 60);
    expect(r.executed.filter((e) => e.merchant_uid.includes(sub.id))).toEqual([]);
    expect(await h.server.reconciler.runOnce()).toMatchObject({ errors: 0 });
    expect((await getSub(h, sub.id)).status).toBe("CANCELED");
  });
});

// A renewal's retry Iamport refuses to schedule: test/subscriptions/dunning.test.ts.
describe("a charge Iamport refuses to schedule", () => {
  it("a scheduled payment whose registration was left unknown, then refused, is FAILED by reconciliation, which reports no error", async () => {
    const customerUid = await registerCard(h, uid("c"));
    // Iamport answers 500 to the registration and to its one repetition: the row waits PENDING for reconciliation.
    await h.emu.post("/__emulator/faults", { route: "POST /subscribe/payments/schedule", mode: "http500", times: 2 });
    const scheduleAt = new Date(((await emulatorNow(h)) + 3 * DAY) * 1000).toISOString();
    const r = await h.gql(
      `mutation($c: String!, $at: DateTime!) { schedulePayments(input: { customerUid: $c, schedules: [{ scheduleAt: $at, amount: 5000, name: "x" }] }) { merchantUid } }`,
      { c: customerUid, at: scheduleAt },
    );
    // Iamport may have registered it: the answer says the outcome is unknown and names the payment.
    expect(r.errors?.[0].extensions).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUids: [expect.any(String)] });
    const [row] = await h.sql<{ merchant_uid: string; status: string }>(`select merchant_uid, status from payments where customer_uid = ?`, [customerUid]);
    expect(row.status).toBe("PENDING");

    await deleteKeyAtIamport(customerUid);
    await ageOpenWork(h, 600);
    expect(await h.server.reconciler.runOnce()).toMatchObject({ errors: 0 });
    const [settled] = await h.sql<{ status: string; fail_reason: string }>(`select status, fail_reason from payments where merchant_uid = ?`, [row.merchant_uid]);
    expect(settled).toMatchObject({ status: "FAILED", fail_reason: expect.stringMatching(/^Iamport refused the schedule: 등록된 고객정보가 없습니다/) });
    expect(await h.server.reconciler.runOnce()).toMatchObject({ unregisteredSchedules: 0, errors: 0 });
  });
});
