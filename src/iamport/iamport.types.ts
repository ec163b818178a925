/** Wire types of the Iamport (PortOne V1) REST API, as the services use them. */

export interface IamportEnvelope<T> {
  code: number;
  message: string | null;
  response: T | null;
}

export interface IamportToken {
  access_token: string;
  now: number;
  expired_at: number;
}

export interface IamportCustomer {
  customer_uid: string;
  pg_provider: string;
  pg_id: string;
  customer_id?: string | null;
  card_name: string | null;
  card_code?: string | null;
  card_number?: string | null;
  card_type?: number | null;
  customer_name?: string | null;
  customer_tel?: string | null;
  customer_email?: string | null;
  inserted: number;
  updated: number;
  sandbox: boolean;
}

/** Card data: passed through to Iamport, never stored or logged. */
export interface CardData {
  card_number: string;
  expiry: string;
  birth: string;
  pwd_2digit?: string;
}

export interface IssueBillingKeyRequest extends CardData {
  pg?: string;
  customer_id?: string;
  customer_name?: string;
  customer_tel?: string;
  customer_email?: string;
}

export type IamportPaymentStatus = "ready" | "paid" | "failed" | "cancelled";

export interface IamportCancelHistory {
  pg_tid: string;
  amount: number;
  cancelled_at: number;
  reason: string;
  receipt_url?: string;
  cancellation_id?: string;
}

export interface IamportPayment {
  imp_uid: string;
  merchant_uid: string;
  amount: number;
  cancel_amount: number;
  currency: string;
  status: IamportPaymentStatus;
  pay_method?: string;
  channel?: string;
  pg_provider?: string;
  name?: string | null;
  buyer_name?: string | null;
  card_name?: string | null;
  card_number?: string | null;
  customer_uid?: string | null;
  customer_uid_usage?: string | null;
  fail_reason?: string | null;
  cancel_reason?: string | null;
  started_at?: number;
  paid_at?: number;
  failed_at?: number;
  cancelled_at?: number;
  receipt_url?: string | null;
  cancel_history?: IamportCancelHistory[];
  vbank_num?: string | null;
  vbank_name?: string | null;
  vbank_date?: number;
  custom_data?: string | null;
  /** The tax-free and VAT parts of amount, as the charge or schedule gave them. */
  tax_free?: number;
  vat_amount?: number | null;
  sandbox: boolean;
}

export interface AgainRequest {
  customer_uid: string;
  merchant_uid: string;
  amount: number;
  name: string;
  buyer_name?: string;
  buyer_email?: string;
  buyer_tel?: string;
  custom_data?: string;
  notice_url?: string;
  /** The tax-free part of amount. */
  tax_free?: number;
  /** The VAT part of amount; omitted: Iamport computes it. */
  vat_amount?: number;
}

export interface ScheduleEntry {
  merchant_uid: string;
  schedule_at: number;
  amount: number;
  name: string;
  currency?: string;
  buyer_name?: string;
  buyer_email?: string;
  buyer_tel?: string;
  custom_data?: string;
  notice_url?: string;
  tax_free?: number;
  vat_amount?: number;
}

export type ScheduleStatus = "scheduled" | "executed" | "revoked";

export interface IamportSchedule {
  customer_uid: string;
  merchant_uid: string;
  imp_uid: string | null;
  schedule_at: number;
  executed_at: number;
  revoked_at: number;
  amount: number;
  name: string;
  schedule_status: ScheduleStatus;
  payment_status: IamportPaymentStatus | null;
  fail_reason: string | null;
}

export interface CancelRequest {
  imp_uid?: string;
  merchant_uid?: string;
  amount?: number;
  checksum?: number;
  reason: string;
  /** The tax-free part of this refund (required by Iamport when the payment has one). */
  tax_free?: number;
  /** The VAT part of this refund. */
  vat_amount?: number;
}

export interface IamportPrepared {
  merchant_uid: string;
  amount: number;
}
