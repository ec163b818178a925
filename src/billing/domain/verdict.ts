import type { Payment } from "../../db/entities";
import { PaymentStatus } from "../../db/entities/enums";
import type { ProviderPayment } from "../../provider/port";

export type VerificationOutcome = "PAID" | "VBANK_ISSUED" | "FAILED" | "CANCELLED" | "FORGERY";

export interface Verification {
  outcome: VerificationOutcome;
  message: string;
  /** The status the payment must have now. */
  status: PaymentStatus;
  /** A failure no retry can mend: Iamport refused to schedule the charge, so it would refuse its retries too. */
  final?: boolean;
}

/**
 * The one place that decides a payment's state from what the server itself
 * fetched from Iamport and from the order it recorded. PAID only when Iamport
 * says `paid` AND the amount equals the order's; any amount mismatch is
 * FORGERY_SUSPECTED, and that verdict is never lifted by a later answer.
 */
export function decide(order: Pick<Payment, "amount" | "status" | "merchantUid">, ip: ProviderPayment): Verification {
  if (ip.merchant_uid !== order.merchantUid) {
    return {
      outcome: "FORGERY",
      status: PaymentStatus.FORGERY_SUSPECTED,
      message: `The payment provider's payment belongs to order ${ip.merchant_uid}, not ${order.merchantUid}`,
    };
  }
  if (order.status === PaymentStatus.FORGERY_SUSPECTED) {
    return { outcome: "FORGERY", status: PaymentStatus.FORGERY_SUSPECTED, message: "The payment was already found forged" };
  }
  const amountMatches = Math.round(Number(ip.amount)) === order.amount;
  switch (ip.status) {
    case "paid":
      if (!amountMatches) {
        return {
          outcome: "FORGERY",
          status: PaymentStatus.FORGERY_SUSPECTED,
          message: `The payment provider reports ${ip.amount} paid but the order expects ${order.amount}`,
        };
      }
      return { outcome: "PAID", status: PaymentStatus.PAID, message: "Paid" };
    case "ready":
      if (!amountMatches) {
        return {
          outcome: "FORGERY",
          status: PaymentStatus.FORGERY_SUSPECTED,
          message: `The payment provider issued a virtual account for ${ip.amount} but the order expects ${order.amount}`,
        };
      }
      return { outcome: "VBANK_ISSUED", status: PaymentStatus.READY, message: "Virtual account issued; waiting for the deposit" };
    case "cancelled":
      return { outcome: "CANCELLED", status: PaymentStatus.CANCELLED, message: ip.cancel_reason || "Cancelled" };
    case "failed":
    default:
      return { outcome: "FAILED", status: PaymentStatus.FAILED, message: ip.fail_reason || "The payment failed" };
  }
}

/**
 * Whether Iamport's answer about `ip` may change the order's row. The answer
 * about the attempt the row already records is always applied (Iamport's
 * current state of that payment is the truth: paid, then cancelled, ...). An
 * answer about ANOTHER attempt of the same merchant_uid (an earlier failed
 * window, a virtual account abandoned for a card) may only move the order
 * forward: a late or repeated notice about a failed attempt must never undo a
 * payment that succeeded.
 */
export function supersedes(order: Pick<Payment, "impUid" | "status">, ip: ProviderPayment): boolean {
  if (!order.impUid || order.impUid === ip.imp_uid) return true;
  switch (ip.status) {
    case "paid":
      return [PaymentStatus.PENDING, PaymentStatus.SCHEDULED, PaymentStatus.READY, PaymentStatus.FAILED].includes(order.status);
    case "ready":
      return [PaymentStatus.PENDING, PaymentStatus.FAILED].includes(order.status);
    default:
      return false;
  }
}

/** Margin for clocks of several server processes and timestamp rounding. */
const STALE_MARGIN_MS = 1000;

/**
 * True when another flow applied an Iamport answer to the row after (or about
 * when) this one asked: its answer may be older than what the row holds. A row
 * only created meanwhile (no answer applied yet) is not newer than any answer.
 */
export function changedSince(p: Pick<Payment, "checkedAt">, fetchedAt: Date): boolean {
  return (p.checkedAt?.getTime() ?? 0) >= fetchedAt.getTime() - STALE_MARGIN_MS;
}

/** Whether applying this answer would change what the row says (a repeat of what it holds needs no re-check). */
export function wouldChange(p: Pick<Payment, "status" | "cancelledAmount" | "impUid" | "amount" | "merchantUid">, ip: ProviderPayment): boolean {
  return (
    decide(p, ip).status !== p.status ||
    Math.round(Number(ip.cancel_amount ?? 0)) !== p.cancelledAmount ||
    (p.impUid !== null && p.impUid !== undefined && p.impUid !== ip.imp_uid)
  );
}

function fromUnix(seconds: number | undefined): Date | null {
  return seconds && seconds > 0 ? new Date(seconds * 1000) : null;
}

/**
 * When the payment was last cancelled: the latest entry of `cancel_history`,
 * which records every cancellation, partial ones included. `cancelled_at` is
 * only the fallback, since its meaning after a partial cancel is not
 * documented (0 or the latest cancellation, depending on who answers).
 */
export function lastCancellation(ip: Pick<ProviderPayment, "cancel_history" | "cancelled_at">): number | undefined {
  const times = (ip.cancel_history ?? []).map((c) => Number(c.cancelled_at)).filter((t) => Number.isFinite(t) && t > 0);
  return times.length > 0 ? Math.max(...times) : ip.cancelled_at;
}

/** Copies Iamport's answer and the verdict onto the payment row. */
export function applyVerification(payment: Payment, ip: ProviderPayment, v: Verification): void {
  const previous = payment.status;
  payment.status = v.status;
  if (ip.merchant_uid === payment.merchantUid) payment.impUid = ip.imp_uid;
  payment.paidAmount = ip.status === "paid" || ip.status === "cancelled" ? Math.round(Number(ip.amount)) : payment.paidAmount ?? null;
  payment.cancelledAmount = Math.round(Number(ip.cancel_amount ?? 0));
  payment.paidAt = fromUnix(ip.paid_at) ?? payment.paidAt ?? null;
  payment.failedAt = fromUnix(ip.failed_at) ?? payment.failedAt ?? null;
  payment.cancelledAt = fromUnix(lastCancellation(ip)) ?? payment.cancelledAt ?? null;
  // A forgery keeps the reason it was first found for (the amounts), not "already found forged".
  const forgedBefore = previous === PaymentStatus.FORGERY_SUSPECTED && payment.failReason;
  payment.failReason =
    v.status === PaymentStatus.FAILED
      ? ip.fail_reason || v.message
      : v.status === PaymentStatus.FORGERY_SUSPECTED
        ? forgedBefore
          ? payment.failReason
          : v.message
        : null;
  payment.receiptUrl = ip.receipt_url ?? payment.receiptUrl ?? null;
  payment.payMethod = ip.pay_method ?? payment.payMethod ?? null;
  payment.currency = ip.currency || payment.currency;
  payment.iamport = snapshot(ip);
  payment.checkedAt = new Date();
}

/** What is kept of Iamport's answer: no buyer contact data beyond what the order has, card number masked by Iamport. */
function snapshot(ip: ProviderPayment): Record<string, unknown> {
  const keep: (keyof ProviderPayment)[] = [
    "imp_uid",
    "merchant_uid",
    "amount",
    "cancel_amount",
    "currency",
    "status",
    "pay_method",
    "channel",
    "pg_provider",
    "card_name",
    "customer_uid",
    "customer_uid_usage",
    "fail_reason",
    "cancel_reason",
    "started_at",
    "paid_at",
    "failed_at",
    "cancelled_at",
    "receipt_url",
    "vbank_num",
    "vbank_name",
    "vbank_date",
    "sandbox",
  ];
  const out: Record<string, unknown> = {};
  for (const k of keep) if (ip[k] !== undefined) out[k] = ip[k];
  return out;
}
