import type { Payment } from "../../db/entities";

/** The tax-free and VAT parts of a charge or schedule as the provider port takes them (Iamport's `tax_free`, `vat_amount`). */
export function taxFields(p: Pick<Payment, "taxFreeAmount" | "vatAmount">): { taxFree?: number; vat?: number } {
  return {
    // Iamport's own default is 0 tax-free: only a part the merchant set is sent.
    ...(p.taxFreeAmount > 0 ? { taxFree: p.taxFreeAmount } : {}),
    // Null leaves the VAT to Iamport; 0 (with no tax-free part) is a zero-rated payment, so it is sent.
    ...(p.vatAmount !== null && p.vatAmount !== undefined ? { vat: p.vatAmount } : {}),
  };
}

/**
 * The tax-free and VAT parts of a refund of `amount` from a payment of
 * `paid` won of which `cancelledBefore` was refunded already: each part in
 * proportion to the won refunded, as the difference of the part of all that
 * is refunded after and before this refund, each rounded down to the won.
 * The parts of successive refunds therefore add up to exactly the payment's
 * part once everything is refunded, and never to more than it.
 */
export function refundParts(
  p: Pick<Payment, "taxFreeAmount" | "vatAmount">,
  paid: number,
  cancelledBefore: number,
  amount: number,
): { taxFree: number; vat: number | null } {
  const share = (part: number) => {
    if (part <= 0 || paid <= 0) return 0;
    const after = Math.min(paid, cancelledBefore + amount);
    return Math.floor((part * after) / paid) - Math.floor((part * cancelledBefore) / paid);
  };
  return { taxFree: share(p.taxFreeAmount), vat: p.vatAmount === null || p.vatAmount === undefined ? null : share(p.vatAmount) };
}

/**
 * The tax-free and VAT parts of a charge of `amount` won made on the terms of
 * `of` (a plan: its amount and parts), in the same proportion, each rounded
 * down to the won: a plan change's difference charge is taxed as the plan it
 * moves to.
 */
export function proportionalParts(of: Pick<Payment, "amount" | "taxFreeAmount" | "vatAmount">, amount: number): { taxFreeAmount: number; vatAmount: number | null } {
  const parts = refundParts(of, of.amount, 0, amount);
  return { taxFreeAmount: parts.taxFree, vatAmount: parts.vat };
}
