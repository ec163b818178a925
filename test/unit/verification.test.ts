import type { Payment } from "../../src/db/entities";
import { PaymentStatus } from "../../src/db/entities/enums";
import { applyVerification, decide } from "../../src/billing/domain/verdict";
import type { IamportPayment } from "../../src/iamport/iamport.types";

/** A paid 10000 order as Iamport reports it after refunds: what the row records must not depend on `cancelled_at`. */
function refunded(cancelledAt: number, history: [amount: number, at: number][]): IamportPayment {
  return {
    imp_uid: "imps_000000000001",
    merchant_uid: "order_1",
    amount: 10_000,
    cancel_amount: history.reduce((s, [a]) => s + a, 0),
    currency: "KRW",
    status: history.reduce((s, [a]) => s + a, 0) >= 10_000 ? "cancelled" : "paid",
    paid_at: 1_800_000_000,
    failed_at: 0,
    cancelled_at: cancelledAt,
    cancel_history: history.map(([amount, at], i) => ({ pg_tid: `t${i}`, amount, cancelled_at: at, reason: "r" })),
  } as IamportPayment;
}

function order(): Payment {
  return { merchantUid: "order_1", amount: 10_000, status: PaymentStatus.PAID, impUid: "imps_000000000001", cancelledAmount: 0, currency: "KRW" } as Payment;
}

describe("applyVerification of a refunded payment", () => {
  it.each([
    ["0 (as some answers send after a partial cancel)", 0],
    ["the time of the latest cancellation", 1_800_000_500],
  ])("takes cancelledAt of a partial refund from cancel_history when cancelled_at is %s", (_label, cancelledAt) => {
    const p = order();
    const ip = refunded(cancelledAt, [[2500, 1_800_000_500]]);
    applyVerification(p, ip, decide(p, ip));
    expect(p).toMatchObject({ status: PaymentStatus.PAID, cancelledAmount: 2500, cancelledAt: new Date(1_800_000_500_000) });
  });

  it("takes the latest entry of several, whatever their order", () => {
    const p = order();
    const ip = refunded(1_800_000_100, [
      [7500, 1_800_000_900],
      [2500, 1_800_000_100],
    ]);
    applyVerification(p, ip, decide(p, ip));
    expect(p).toMatchObject({ status: PaymentStatus.CANCELLED, cancelledAmount: 10_000, cancelledAt: new Date(1_800_000_900_000) });
  });

  it("falls back to cancelled_at without a history (a withdrawn virtual account)", () => {
    const p = order();
    const ip = { ...refunded(1_800_000_300, []), status: "cancelled" } as IamportPayment;
    applyVerification(p, ip, decide(p, ip));
    expect(p.cancelledAt).toEqual(new Date(1_800_000_300_000));
  });
});
