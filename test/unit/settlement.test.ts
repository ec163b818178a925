import type { Payment } from "../../src/db/entities";
import { BillingInterval, PaymentKind, PaymentStatus as P, SubscriptionStatus as S } from "../../src/db/entities/enums";
import { isReservedMerchantUid, renewalMerchantUid } from "../../src/billing/domain/merchant-uids";
import {
  decideAnswer,
  planSubscriptionStep,
  type ChargeFacts,
  type SubscriptionFacts,
} from "../../src/billing/domain/settlement";
import { paymentMayMove, subscriptionMayMove } from "../../src/billing/domain/transitions";
import type { IamportPayment } from "../../src/iamport/iamport.types";

const TZ = "Asia/Seoul";
const policy = { timeZone: TZ, retryDelaysSeconds: [86_400, 3 * 86_400] };
// 2026-01-10 00:00:00 KST
const ANCHOR = new Date("2026-01-09T15:00:00Z");
const NOW = new Date("2026-02-09T15:00:30Z");

function sub(over: Partial<SubscriptionFacts> = {}): SubscriptionFacts {
  return { id: "s1", status: S.ACTIVE, currentPeriod: 1, anchorAt: ANCHOR, interval: BillingInterval.MONTH, intervalCount: 1, cancelAtPeriodEnd: false, ...over };
}

function charge(over: Partial<ChargeFacts> = {}): ChargeFacts {
  return {
    merchantUid: renewalMerchantUid("s1", 2, 1),
    status: P.PAID,
    previous: P.SCHEDULED,
    kind: PaymentKind.SCHEDULE,
    period: 2,
    attempt: 1,
    paidAt: new Date("2026-02-09T15:00:05Z"),
    failedAt: null,
    failReason: null,
    ...over,
  };
}

function declined(reason: string, over: Partial<ChargeFacts> = {}): ChargeFacts {
  return charge({ status: P.FAILED, paidAt: null, failedAt: new Date("2026-02-09T15:00:05Z"), failReason: reason, ...over });
}

describe("the renewal step (planSubscriptionStep)", () => {
  it("a paid renewal grants its period and plans the next period's charge on the boundary", () => {
    const plan = planSubscriptionStep(charge(), sub(), [], policy, NOW);
    expect(plan.change).toMatchObject({
      status: S.ACTIVE,
      statusReason: null,
      currentPeriod: 2,
      currentPeriodStart: new Date("2026-02-09T15:00:00Z"),
      currentPeriodEnd: new Date("2026-03-09T15:00:00Z"),
    });
    expect(plan.next).toEqual({ merchantUid: renewalMerchantUid("s1", 3, 1), period: 3, attempt: 1, at: new Date("2026-03-09T15:00:00Z") });
    expect(plan.settled).toEqual({ status: P.PAID, attempt: 1 });
  });

  it("a first charge made at once moves the anchor to when Iamport took the money", () => {
    const paidAt = new Date("2026-01-20T03:04:05.678Z");
    const plan = planSubscriptionStep(
      charge({ merchantUid: renewalMerchantUid("s1", 1, 1), kind: PaymentKind.AGAIN, period: 1, previous: P.PENDING, paidAt }),
      sub({ status: S.INCOMPLETE, currentPeriod: 0 }),
      [],
      policy,
      NOW,
    );
    expect(plan.change).toMatchObject({ status: S.ACTIVE, anchorAt: new Date("2026-01-20T03:04:05Z"), currentPeriod: 1, currentPeriodStart: new Date("2026-01-20T03:04:05Z") });
    expect(plan.next?.at).toEqual(new Date("2026-02-20T03:04:05Z"));
    // Not a renewal: the renewals' counter counts the charges of Iamport's scheduler.
    expect(plan.settled).toBeNull();
  });

  it("a first charge scheduled with startAt keeps the anchor (startAt)", () => {
    const plan = planSubscriptionStep(
      charge({ merchantUid: renewalMerchantUid("s1", 1, 1), period: 1, paidAt: new Date("2026-01-09T15:00:07Z") }),
      sub({ currentPeriod: 0 }),
      [],
      policy,
      NOW,
    );
    expect(plan.change?.anchorAt).toBeUndefined();
    expect(plan.change).toMatchObject({ currentPeriod: 1, currentPeriodStart: ANCHOR, currentPeriodEnd: new Date("2026-02-09T15:00:00Z") });
    expect(plan.next?.merchantUid).toBe(renewalMerchantUid("s1", 2, 1));
  });

  it("a renewal confirmed after its next boundary plans the next charge a minute after the payment", () => {
    const paidAt = new Date("2026-03-20T00:00:00.500Z");
    const plan = planSubscriptionStep(charge({ paidAt }), sub(), [], policy, NOW);
    expect(plan.next?.at).toEqual(new Date("2026-03-20T00:01:00Z"));
  });

  it("a paid retry of a PAST_DUE subscription makes it ACTIVE; the next period stays on its boundary", () => {
    const plan = planSubscriptionStep(
      charge({ merchantUid: renewalMerchantUid("s1", 2, 2), attempt: 2, paidAt: new Date("2026-02-10T15:00:00Z") }),
      sub({ status: S.PAST_DUE }),
      [],
      policy,
      NOW,
    );
    expect(plan.change?.status).toBe(S.ACTIVE);
    expect(plan.next).toMatchObject({ merchantUid: renewalMerchantUid("s1", 3, 1), at: new Date("2026-03-09T15:00:00Z") });
    expect(plan.settled).toEqual({ status: P.PAID, attempt: 2 });
  });

  it("a paid charge of a subscription cancelling at period end grants the period and plans nothing after it", () => {
    const plan = planSubscriptionStep(charge(), sub({ cancelAtPeriodEnd: true }), [], policy, NOW);
    expect(plan.change).toMatchObject({ status: S.ACTIVE, currentPeriod: 2, nextMerchantUid: null });
    expect(plan.change?.statusReason).toMatch(/cancels at the end/);
    expect(plan.next).toBeNull();
  });

  it("a soft decline makes it PAST_DUE and plans the retry after the first delay", () => {
    const plan = planSubscriptionStep(declined("한도초과"), sub(), [], policy, NOW);
    expect(plan.change).toMatchObject({ status: S.PAST_DUE });
    expect(plan.change?.statusReason).toMatch(/retry 1 of 2/);
    expect(plan.next).toEqual({ merchantUid: renewalMerchantUid("s1", 2, 2), period: 2, attempt: 2, at: new Date("2026-02-10T15:00:05Z") });
  });

  it("a hard decline ends dunning at once: UNPAID, nothing planned", () => {
    const plan = planSubscriptionStep(declined("분실 카드"), sub(), [], policy, NOW);
    expect(plan.change).toMatchObject({ status: S.UNPAID, nextMerchantUid: null });
    expect(plan.change?.statusReason).toMatch(/retries cannot fix/);
    expect(plan.next).toBeNull();
  });

  it("a failure Iamport's scheduler refused (final) is treated as hard", () => {
    const plan = planSubscriptionStep(declined("schedule refused", { final: true }), sub(), [], policy, NOW);
    expect(plan.change?.status).toBe(S.UNPAID);
  });

  it("the last retry declining exhausts dunning", () => {
    const plan = planSubscriptionStep(declined("잔액부족", { merchantUid: renewalMerchantUid("s1", 2, 3), attempt: 3 }), sub({ status: S.PAST_DUE }), [], policy, NOW);
    expect(plan.change).toMatchObject({ status: S.UNPAID });
    expect(plan.change?.statusReason).toMatch(/retries exhausted/);
    expect(plan.settled).toEqual({ status: P.FAILED, attempt: 3 });
  });

  it("a declined first charge (INCOMPLETE) cancels the subscription", () => {
    const plan = planSubscriptionStep(
      declined("카드 거절", { merchantUid: renewalMerchantUid("s1", 1, 1), kind: PaymentKind.AGAIN, period: 1, previous: P.PENDING }),
      sub({ status: S.INCOMPLETE, currentPeriod: 0 }),
      [],
      policy,
      NOW,
    );
    expect(plan.change).toMatchObject({ status: S.CANCELED, canceledAt: NOW, statusReason: "first payment declined: 카드 거절" });
    expect(plan.next).toBeNull();
  });

  it("a declined renewal of a subscription cancelling at period end ends it now, with no retry", () => {
    const plan = planSubscriptionStep(declined("한도초과"), sub({ cancelAtPeriodEnd: true }), [], policy, NOW);
    expect(plan.change).toMatchObject({ status: S.CANCELED });
    expect(plan.next).toBeNull();
  });

  it("an outcome for a canceled subscription changes nothing but is still counted", () => {
    const plan = planSubscriptionStep(charge(), sub({ status: S.CANCELED }), [], policy, NOW);
    expect(plan.change).toBeNull();
    expect(plan.next).toBeNull();
    expect(plan.settled).toEqual({ status: P.PAID, attempt: 1 });
    expect(plan.log?.level).toBe("warn");
  });

  it("forgery changes nothing on the subscription and is logged as an error", () => {
    const plan = planSubscriptionStep(charge({ status: P.FORGERY_SUSPECTED }), sub(), [], policy, NOW);
    expect(plan.change).toBeNull();
    expect(plan.log?.level).toBe("error");
  });

  it("an outcome of a superseded attempt (a later charge exists that it did not plan) changes nothing", () => {
    const plan = planSubscriptionStep(declined("한도초과"), sub({ currentPeriod: 2 }), [renewalMerchantUid("s1", 3, 1)], policy, NOW);
    expect(plan.change).toBeNull();
    expect(plan.next).toBeNull();
  });

  it("a redelivered outcome whose planned charge already exists plans the same charge again (found, not doubled)", () => {
    const plan = planSubscriptionStep(charge(), sub(), [renewalMerchantUid("s1", 3, 1)], policy, NOW);
    expect(plan.next?.merchantUid).toBe(renewalMerchantUid("s1", 3, 1));
  });

  it("a status that did not change plans nothing", () => {
    const plan = planSubscriptionStep(charge({ previous: P.PAID }), sub(), [], policy, NOW);
    expect(plan).toMatchObject({ change: null, next: null, settled: null });
  });
});

function answer(over: Partial<IamportPayment> = {}): IamportPayment {
  return { imp_uid: "imps_1", merchant_uid: "order_1", amount: 10_000, cancel_amount: 0, currency: "KRW", status: "paid", paid_at: 1_800_000_000, ...over } as IamportPayment;
}

function row(over: Partial<Payment> = {}): Payment {
  return { merchantUid: "order_1", amount: 10_000, status: P.PENDING, impUid: null, checkedAt: null, cancelledAmount: 0, ...over } as Payment;
}

describe("Iamport's answer about an order (decideAnswer)", () => {
  const asked = new Date("2026-02-01T00:00:00Z");

  it("applies a paid answer with the order's amount", () => {
    expect(decideAnswer(row(), answer(), asked, false)).toMatchObject({ kind: "apply", verdict: { status: P.PAID } });
  });

  it("declined: FAILED with Iamport's reason", () => {
    expect(decideAnswer(row(), answer({ status: "failed", fail_reason: "한도초과" }), asked, false)).toMatchObject({
      kind: "apply",
      verdict: { status: P.FAILED, message: "한도초과" },
    });
  });

  it("an amount that differs is FORGERY_SUSPECTED, and that is never lifted", () => {
    expect(decideAnswer(row(), answer({ amount: 100 }), asked, false)).toMatchObject({ kind: "apply", verdict: { status: P.FORGERY_SUSPECTED } });
    expect(decideAnswer(row({ status: P.FORGERY_SUSPECTED, impUid: "imps_1" }), answer(), asked, false)).toMatchObject({
      verdict: { status: P.FORGERY_SUSPECTED },
    });
  });

  it("another order's payment presented as this one's changes neither", () => {
    expect(decideAnswer(row(), answer({ merchant_uid: "order_2" }), asked, false)).toMatchObject({ kind: "foreign", verdict: { outcome: "FORGERY" } });
  });

  it("a stale answer (the row changed after it was asked) that would change the row is asked again, once", () => {
    const changed = row({ status: P.PAID, impUid: "imps_1", checkedAt: new Date(asked.getTime() + 10), cancelledAmount: 2_000 });
    expect(decideAnswer(changed, answer(), asked, false)).toEqual({ kind: "ask-again" });
    expect(decideAnswer(changed, answer(), asked, true).kind).toBe("apply");
    // The same facts again need no second question.
    expect(decideAnswer(row({ status: P.PAID, impUid: "imps_1", checkedAt: new Date(asked.getTime() + 10) }), answer(), asked, false).kind).toBe("apply");
  });

  it("a late notice about an earlier failed attempt never undoes a paid order", () => {
    const d = decideAnswer(row({ status: P.PAID, impUid: "imps_2" }), answer({ imp_uid: "imps_1", status: "failed" }), asked, false);
    expect(d.kind).toBe("kept");
  });

  it("another attempt that paid moves a FAILED order forward", () => {
    expect(decideAnswer(row({ status: P.FAILED, impUid: "imps_0" }), answer(), asked, false).kind).toBe("apply");
  });

  it("a move the status table forbids is not applied (a cancelled order never becomes paid again)", () => {
    expect(decideAnswer(row({ status: P.CANCELLED, impUid: "imps_1" }), answer(), asked, false).kind).toBe("kept");
  });
});

describe("the status tables", () => {
  it("payments: FORGERY_SUSPECTED is final; PAID never goes back", () => {
    expect(Object.values(P).filter((to) => to !== P.FORGERY_SUSPECTED && paymentMayMove(P.FORGERY_SUSPECTED, to))).toEqual([]);
    expect([P.PENDING, P.SCHEDULED, P.READY, P.FAILED, P.REVOKED].some((to) => paymentMayMove(P.PAID, to))).toBe(false);
    expect(paymentMayMove(P.PAID, P.CANCELLED)).toBe(true);
  });

  it("subscriptions: CANCELED is final; UNPAID may become ACTIVE again", () => {
    expect(Object.values(S).filter((to) => to !== S.CANCELED && subscriptionMayMove(S.CANCELED, to))).toEqual([]);
    expect(subscriptionMayMove(S.UNPAID, S.ACTIVE)).toBe(true);
    expect(subscriptionMayMove(S.INCOMPLETE, S.PAST_DUE)).toBe(false);
  });
});

describe("merchant uids", () => {
  it("subscription charges use the reserved prefix; callers' orders may not", () => {
    expect(renewalMerchantUid("s1", 2, 3)).toBe("sub_s1_p2_a3");
    expect(isReservedMerchantUid("sub_s1_p2_a3")).toBe(true);
    expect(isReservedMerchantUid("order_sub_1")).toBe(false);
  });
});
