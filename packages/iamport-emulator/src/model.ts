import type { CardProfile } from "./cards";

/*
 * In-memory records and their wire shapes. Records keep Iamport's snake_case
 * field names so that serializing is a plain copy; the wire functions list
 * every property of the spec's annotations (null or 0 when not applicable),
 * so clients always find the fields they expect.
 */

export type PaymentStatus = "ready" | "paid" | "failed" | "cancelled";
export type ScheduleStatus = "scheduled" | "executed" | "revoked";
export type CustomerUidUsage = "issue" | "payment" | "payment.scheduled";

export interface BuyerInfo {
  buyer_name: string | null;
  buyer_email: string | null;
  buyer_tel: string | null;
  buyer_addr: string | null;
  buyer_postcode: string | null;
}

export interface CustomerInfo {
  customer_name: string | null;
  customer_tel: string | null;
  customer_email: string | null;
  customer_addr: string | null;
  customer_postcode: string | null;
}

export interface Customer extends CustomerInfo {
  customer_uid: string;
  customer_id: string | null;
  pg_provider: string;
  pg_id: string;
  card: CardProfile;
  inserted: number;
  updated: number;
  /** Charges made with this billing key (drives the "declines after first" test card). */
  charges: number;
}

export interface CancelEntry {
  pg_tid: string;
  amount: number;
  cancelled_at: number;
  reason: string;
  cancellation_id: string;
  receipt_url: string;
  /** The tax-free part of this cancellation (`tax_free` of /payments/cancel). */
  tax_free: number;
  /** The VAT part of this cancellation (`vat_amount` of /payments/cancel), when given. */
  vat_amount: number | null;
}

export interface Payment extends BuyerInfo {
  /** Creation order; "latest payment of an order" means highest seq. */
  seq: number;
  imp_uid: string;
  merchant_uid: string;
  pay_method: "card" | "vbank";
  channel: "api" | "pc";
  pg_provider: string;
  pg_tid: string | null;
  pg_id: string;
  apply_num: string | null;
  card_code: string | null;
  card_name: string | null;
  card_quota: number;
  card_number: string | null;
  card_type: number | null;
  vbank_code: string | null;
  vbank_name: string | null;
  vbank_num: string | null;
  vbank_holder: string | null;
  vbank_date: number;
  vbank_issued_at: number;
  name: string | null;
  amount: number;
  cancel_amount: number;
  /** The tax-free part of `amount` (`tax_free` of the charge or schedule; 0 when not given). */
  tax_free: number;
  /** The VAT part of `amount` (`vat_amount` of the charge or schedule), when given. */
  vat_amount: number | null;
  currency: string;
  custom_data: string | null;
  user_agent: string | null;
  status: PaymentStatus;
  started_at: number;
  paid_at: number;
  failed_at: number;
  cancelled_at: number;
  fail_reason: string | null;
  cancel_reason: string | null;
  receipt_url: string | null;
  cancel_history: CancelEntry[];
  customer_uid: string | null;
  customer_uid_usage: CustomerUidUsage | null;
  /** Where this payment's webhooks go; falls back to the emulator's webhookUrl. */
  notice_url: string | null;
}

export interface Schedule extends BuyerInfo {
  seq: number;
  customer_uid: string;
  customer_id: string | null;
  merchant_uid: string;
  schedule_at: number;
  executed_at: number;
  revoked_at: number;
  amount: number;
  currency: string;
  name: string;
  custom_data: string | null;
  notice_url: string | null;
  tax_free: number | null;
  vat_amount: number | null;
  card_quota: number;
  schedule_status: ScheduleStatus;
  imp_uid: string | null;
  pg_provider: string | null;
  pg_id: string | null;
  /** Set when the run failed before any payment existed (e.g. the order was already paid). */
  failure_without_payment: string | null;
}

export interface Prepare {
  merchant_uid: string;
  amount: number;
  currency: string | null;
}

export function paymentToWire(p: Payment) {
  return {
    imp_uid: p.imp_uid,
    merchant_uid: p.merchant_uid,
    pay_method: p.pay_method,
    channel: p.channel,
    pg_provider: p.pg_provider,
    emb_pg_provider: null,
    pg_tid: p.pg_tid,
    pg_id: p.pg_id,
    escrow: false,
    apply_num: p.apply_num,
    bank_code: null,
    bank_name: null,
    card_code: p.card_code,
    card_name: p.card_name,
    card_issuer_code: p.card_code,
    card_issuer_name: p.card_name,
    card_publisher_code: p.card_code,
    card_publisher_name: p.card_name,
    card_quota: p.card_quota,
    card_number: p.card_number,
    card_type: p.card_type,
    vbank_code: p.vbank_code,
    vbank_name: p.vbank_name,
    vbank_num: p.vbank_num,
    vbank_holder: p.vbank_holder,
    vbank_date: p.vbank_date,
    vbank_issued_at: p.vbank_issued_at,
    name: p.name,
    amount: p.amount,
    cancel_amount: p.cancel_amount,
    // Payments of a state file written before these fields existed carry none.
    tax_free: p.tax_free ?? 0,
    vat_amount: p.vat_amount ?? null,
    currency: p.currency,
    buyer_name: p.buyer_name,
    buyer_email: p.buyer_email,
    buyer_tel: p.buyer_tel,
    buyer_addr: p.buyer_addr,
    buyer_postcode: p.buyer_postcode,
    custom_data: p.custom_data,
    user_agent: p.user_agent,
    status: p.status,
    started_at: p.started_at,
    paid_at: p.paid_at,
    failed_at: p.failed_at,
    cancelled_at: p.cancelled_at,
    fail_reason: p.fail_reason,
    cancel_reason: p.cancel_reason,
    receipt_url: p.receipt_url,
    cancel_history: p.cancel_history.map((c) => ({ ...c, tax_free: c.tax_free ?? 0, vat_amount: c.vat_amount ?? null })),
    cancel_receipt_urls: p.cancel_history.map((c) => c.receipt_url),
    cash_receipt_issued: false,
    customer_uid: p.customer_uid,
    customer_uid_usage: p.customer_uid_usage,
    promotion: null,
    sandbox: true,
  };
}

export type PaymentWire = ReturnType<typeof paymentToWire>;

export function customerToWire(c: Customer) {
  return {
    customer_uid: c.customer_uid,
    pg_provider: c.pg_provider,
    pg_id: c.pg_id,
    sandbox: true,
    customer_id: c.customer_id,
    card_name: c.card.cardName,
    card_code: c.card.cardCode,
    card_issuer_code: c.card.cardCode,
    card_issuer_name: c.card.cardName,
    card_publisher_code: c.card.cardCode,
    card_publisher_name: c.card.cardName,
    card_number: c.card.masked,
    card_type: c.card.cardType,
    customer_name: c.customer_name,
    customer_tel: c.customer_tel,
    customer_email: c.customer_email,
    customer_addr: c.customer_addr,
    customer_postcode: c.customer_postcode,
    inserted: c.inserted,
    updated: c.updated,
  };
}

/** `paymentOf` resolves the schedule's payment so payment_status follows later cancels. */
export function scheduleToWire(s: Schedule, paymentOf: (impUid: string) => Payment | undefined) {
  const payment = s.imp_uid ? paymentOf(s.imp_uid) : undefined;
  let paymentStatus: PaymentStatus | null = null;
  let failReason: string | null = null;
  if (payment) {
    paymentStatus = payment.status;
    failReason = payment.fail_reason;
  } else if (s.failure_without_payment) {
    paymentStatus = "failed";
    failReason = s.failure_without_payment;
  }
  return {
    customer_uid: s.customer_uid,
    merchant_uid: s.merchant_uid,
    imp_uid: s.imp_uid,
    pg_provider: s.pg_provider,
    pg_id: s.pg_id,
    customer_id: s.customer_id,
    schedule_at: s.schedule_at,
    executed_at: s.executed_at,
    revoked_at: s.revoked_at,
    amount: s.amount,
    currency: s.currency,
    name: s.name,
    buyer_name: s.buyer_name,
    buyer_email: s.buyer_email,
    buyer_tel: s.buyer_tel,
    buyer_addr: s.buyer_addr,
    buyer_postcode: s.buyer_postcode,
    custom_data: s.custom_data,
    tax_free: s.tax_free ?? 0,
    vat_amount: s.vat_amount,
    schedule_status: s.schedule_status,
    payment_status: paymentStatus,
    fail_reason: failReason,
    promotion_id: null,
  };
}

export function prepareToWire(p: Prepare) {
  return { merchant_uid: p.merchant_uid, amount: p.amount, currency: p.currency };
}
