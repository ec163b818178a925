import type { Card, Payment } from "../db/entities";

/** JSON shapes of the REST answers (the same names as the GraphQL fields). */
export function presentCard(c: Card) {
  return {
    customerUid: c.customerUid,
    cardName: c.cardName ?? null,
    cardNumberMasked: c.cardNumberMasked ?? null,
    cardType: c.cardType ?? null,
    pgProvider: c.pgProvider ?? null,
    status: c.status,
    replacedAt: c.replacedAt ?? null,
    replacements: c.replacements,
  };
}

export function presentPayment(p: Payment) {
  return {
    merchantUid: p.merchantUid,
    impUid: p.impUid ?? null,
    amount: p.amount,
    paidAmount: p.paidAmount ?? null,
    cancelledAmount: p.cancelledAmount,
    status: p.status,
    failReason: p.failReason ?? null,
  };
}
