import { Harness, registerCard, uid } from "../support/harness";
import { advanceTo, customerSchedules, getSub, iamportPaymentByOrder, iamportSchedule, paymentRows, renewalUid, startSubHarness, unix } from "./helpers";

// TRIAL_CONVERSION_CONSENT=not_required: for merchants outside Korea, a trial turns paid by itself.
let h: Harness;
beforeAll(async () => {
  h = await startSubHarness({ env: { TRIAL_CONVERSION_CONSENT: "not_required" } });
});
afterAll(async () => {
  await h?.close();
});

describe("TRIAL_CONVERSION_CONSENT=not_required", () => {
  it("is warned about at start", () => {
    expect(h.logs.some((l) => l.includes("TRIAL_CONVERSION_CONSENT") && l.includes("not_required"))).toBe(true);
  });

  it("schedules the first charge for trialEnd at start and charges it then, without consent", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const { startSubscription: sub } = await h.client.request<{ startSubscription: { id: string; status: string; trialEnd: string; nextPaymentAt: string } }>(
      `mutation($c: String!) { startSubscription(input: {customerUid: $c, name: "Abroad", amount: 4900, interval: MONTH, trialDays: 7}) { id status trialEnd nextPaymentAt } }`,
      { c: customerUid },
    );
    expect(sub).toMatchObject({ status: "TRIALING", nextPaymentAt: sub.trialEnd });
    expect(await iamportSchedule(h, renewalUid(sub.id, 1))).toMatchObject({ schedule_status: "scheduled", amount: 4900, schedule_at: unix(sub.trialEnd) });

    await advanceTo(h, unix(sub.trialEnd) + 10);
    await h.server.reconciler.runOnce();
    expect((await getSub(h, sub.id)).status).toBe("ACTIVE");
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 1))).toMatchObject({ status: "paid", amount: 4900 });
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.status])).toEqual([
      [1, "PAID"],
      [2, "SCHEDULED"],
    ]);
    expect(await customerSchedules(h, customerUid, "scheduled")).toHaveLength(1);
  });
});
