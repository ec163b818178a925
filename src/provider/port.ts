/**
 * The payment-provider port: what the billing core asks of the provider that
 * holds the billing keys and moves the money, in the core's own vocabulary.
 * Two adapters implement it: Iamport V1 (v1.ts, over the Iamport client) and
 * PortOne V2 (v2.ts). Their differences (who names the billing key, declines
 * as data or as HTTP errors, schedules in batches or one per call, the cancel
 * checksum or currentCancellableAmount, signed webhooks) stay inside them.
 *
 * The errors are the provider errors of src/iamport/iamport.errors.ts, which
 * both adapters throw with the same meaning: not found, refused (an answer
 * about the request), timeout and unavailable (outcome unknown unless
 * `notSent`), unauthorized (the credentials).
 */
export {
  IamportError as ProviderError,
  IamportNotFoundError,
  IamportRefusedError,
  IamportTimeoutError,
  IamportUnauthorizedError,
  IamportUnavailableError,
} from "../iamport/iamport.errors";

export type { ProviderLabel } from "../iamport/iamport.errors";
import type { ProviderLabel } from "../iamport/iamport.errors";

export type ProviderName = "v1" | "v2";

/** Options of one call. */
export interface CallOptions {
  /** Request id of the caller, for log correlation. */
  requestId?: string;
}

// ---- answers ---------------------------------------------------------------

export type ProviderPaymentStatus = "ready" | "paid" | "failed" | "cancelled";

/**
 * A payment as the provider reports it, with the fields the core's verdict
 * reads. `imp_uid` names the provider's record of the attempt (V1's imp_uid;
 * V2's paymentId, which is the merchant_uid: V2 keeps one payment per order).
 * A partial cancellation leaves `status: "paid"` with `cancel_amount` > 0.
 * Times are UNIX seconds by the provider's clock.
 */
export interface ProviderPayment {
  imp_uid: string;
  merchant_uid: string;
  amount: number;
  cancel_amount: number;
  currency: string;
  status: ProviderPaymentStatus;
  pay_method?: string;
  channel?: string;
  pg_provider?: string;
  card_name?: string | null;
  customer_uid?: string | null;
  customer_uid_usage?: string | null;
  fail_reason?: string | null;
  cancel_reason?: string | null;
  started_at?: number;
  paid_at?: number;
  failed_at?: number;
  cancelled_at?: number;
  receipt_url?: string | null;
  cancel_history?: { amount: number; cancelled_at: number }[];
  vbank_num?: string | null;
  vbank_name?: string | null;
  vbank_date?: number;
  sandbox?: boolean;
}

export type ProviderScheduleStatus = "scheduled" | "executed" | "revoked";

/** A registered charge at the provider's scheduler, found by the order's merchant_uid. */
export interface ProviderSchedule {
  merchant_uid: string;
  /** The payment once the schedule ran (V2: the paymentId). */
  imp_uid: string | null;
  schedule_at: number;
  schedule_status: ProviderScheduleStatus;
  /** The amount registered: a revoked registration at another amount is one a price change replaced. */
  amount: number;
}

/** What the provider holds about a billing key: never card data beyond the masked number. */
export interface ProviderCard {
  /** The key the provider issued (V2); null where the merchant's customer_uid is the key (V1). */
  billingKey: string | null;
  customer_id?: string | null;
  card_name?: string | null;
  card_code?: string | null;
  card_number?: string | null;
  /** 0 credit, 1 check (debit). */
  card_type?: number | null;
  pg_provider?: string | null;
  pg_id?: string | null;
}

// ---- requests ----------------------------------------------------------------

/** Card data: passed through to the provider, never stored or logged. */
export interface CardCredentials {
  cardNumber: string;
  /** YYYY-MM */
  expiry: string;
  /** YYMMDD or a business registration number. */
  birth: string;
  pwd2digit?: string;
}

export interface IssueKeyRequest extends CardCredentials {
  pg?: string;
  customerId?: string;
  customerName?: string;
  customerEmail?: string;
  customerTel?: string;
}

/** Who is charged and the amount's split; `taxFree` and `vat` are optional parts of `amount`. */
interface Charge {
  merchantUid: string;
  amount: number;
  taxFree?: number;
  vat?: number;
  name: string;
  currency?: string;
  buyerName?: string;
  buyerEmail?: string;
  buyerTel?: string;
  customData?: string;
  /** Where V1 posts the outcome (V2 sends its webhooks to the URL set in its console). */
  noticeUrl?: string;
}

export interface ChargeRequest extends Charge {
  customerUid: string;
}

export interface ScheduleRequest extends Charge {
  /** When to charge, UNIX seconds. */
  at: number;
}

export interface CancelRequest {
  /** The provider's payment (imp_uid) when known; otherwise the order's. */
  impUid?: string;
  merchantUid?: string;
  /** Omitted: the rest of the payment. */
  amount?: number;
  taxFree?: number;
  vat?: number;
  /** What this server believes is still refundable: the provider refuses the cancel when it differs. */
  cancellable: number;
  reason: string;
}

// ---- webhooks ----------------------------------------------------------------

/** A provider webhook, verified and read: a hint to re-query, never a fact. */
export type ProviderWebhook =
  | { kind: "payment"; type: string; merchantUid: string; impUid: string; cancellationId?: string }
  | { kind: "billing-key"; type: string; billingKey: string }
  | { kind: "ignored"; type: string };

/** A webhook whose signature or timestamp did not verify: `status` is the HTTP answer (400 malformed, 401 not signed by the provider or too old). */
export class WebhookRejectedError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 401,
  ) {
    super(message);
    this.name = "WebhookRejectedError";
  }
}

// ---- the port ----------------------------------------------------------------

export interface PaymentProvider {
  readonly name: ProviderName;
  /** The provider's name in messages a merchant reads: Iamport (V1) or PortOne (V2). */
  readonly label: ProviderLabel;
  /** Issues (or replaces) the billing key of customerUid. */
  issueKey(customerUid: string, req: IssueKeyRequest, o?: CallOptions): Promise<ProviderCard>;
  /**
   * The key customerUid holds at the provider (confirmation of a key issued in
   * the browser). `billingKey`: on V2, the key the browser was given
   * (PortOne's requestIssueBillingKey), which must name customerUid as its
   * customer id; it becomes the customer's key, taking the charges registered
   * on the previous one, as issueKey does. V1 takes none (the customer_uid is the key).
   */
  getKey(customerUid: string, billingKey?: string, o?: CallOptions): Promise<ProviderCard>;
  deleteKey(customerUid: string, o?: CallOptions): Promise<void>;
  /** Charges the billing key now. A decline is an answer (status failed), not an error. */
  charge(req: ChargeRequest, o?: CallOptions): Promise<ProviderPayment>;
  /** Registers charges with the provider's scheduler; answers the registrations it made. */
  schedule(customerUid: string, entries: ScheduleRequest[], o?: CallOptions): Promise<ProviderSchedule[]>;
  /** Revokes pending schedules of customerUid (all, or those of merchantUids); answers those revoked. */
  revoke(customerUid: string, merchantUids?: string[], o?: CallOptions): Promise<ProviderSchedule[]>;
  /** The registration of merchantUid; IamportNotFoundError when there is none. */
  getSchedule(merchantUid: string, o?: CallOptions): Promise<ProviderSchedule>;
  getPayment(impUid: string, o?: CallOptions): Promise<ProviderPayment>;
  /** The latest payment of an order; IamportNotFoundError when the provider has none. */
  findByOrder(merchantUid: string, o?: CallOptions): Promise<ProviderPayment>;
  cancel(req: CancelRequest, o?: CallOptions): Promise<ProviderPayment>;
  /** Registers the amount of a browser checkout before it opens (V1); nothing to do on V2. */
  prepare(merchantUid: string, amount: number, o?: CallOptions): Promise<void>;
  /** Obtains a token (cached), or checks the credentials: readiness. */
  ensureToken(): Promise<void>;
  /** The provider's clock, UNIX seconds: due schedules are judged by it. */
  serverNow(): Promise<number>;
  /** Verifies and reads a webhook of this provider (V2's signed ones); V1's arrive on /iamport-webhook unsigned. */
  parseWebhook?(rawBody: string, headers: Record<string, string | string[] | undefined>): ProviderWebhook;
}
