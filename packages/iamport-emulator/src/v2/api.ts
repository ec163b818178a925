import { randomUUID } from "node:crypto";
import type { Clock } from "../clock";
import { IamportError } from "../errors";
import { randomString } from "../ids";
import type { Payment, Schedule } from "../model";
import { compileTemplate, type CompiledTemplate, type HttpMethod } from "../router";
import type { IamportState } from "../state";
import type { V2WebhookBody, V2WebhookType } from "./webhooks";

/*
 * PortOne V2's billing API over the V1 emulator's records: a V2 billing key is
 * a customer_uid the emulator names, a V2 paymentId is a merchant_uid, a V2
 * transactionId is an imp_uid. So the test cards, the clock and the schedule
 * runner are the V1 emulator's own, and what differs is only V2's wire shape:
 * declines as HTTP errors, one schedule per call, currentCancellableAmount,
 * amounts with taxFree and vat.
 */

export interface V2Credentials {
  apiSecret: string;
  storeId: string;
  channelKey: string;
}

export interface V2Result {
  status: number;
  body: unknown;
}

export interface V2Call {
  params: Record<string, string>;
  query: URLSearchParams;
  body: Record<string, unknown>;
}

export interface V2Route {
  method: HttpMethod;
  template: CompiledTemplate;
  /** False for the calls that obtain a token. */
  auth: boolean;
  handle(call: V2Call): V2Result;
}

/** Lifetimes of V2's tokens, by the emulator clock: about 30 minutes and a day, as PortOne documents. */
const ACCESS_TOKEN_SECONDS = 30 * 60;
const REFRESH_TOKEN_SECONDS = 24 * 3600;

/** A V2 error answer: `{type, message}` with its HTTP status. */
export class V2Error extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

interface KeyInfo {
  billingKey: string;
  issuedAt: number;
  deletedAt: number | null;
  customer: Record<string, unknown>;
  customData: string | null;
}

interface PaymentExtra {
  billingKey: string;
  orderName: string;
  taxFree: number;
  vat: number | null;
  customData: string | null;
  customer: Record<string, unknown>;
  scheduleId: string | null;
  /** When the payment (or its schedule) was requested, emulator time. */
  createdAt: number;
}

const MERCHANT_ID = "merchant-emulator";
const iso = (seconds: number) => new Date(seconds * 1000).toISOString();
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const pgCodeOf = (reason: string | null) => /\[([A-Z]\d+)\]/.exec(reason ?? "")?.[1] ?? "F999";

function text(body: Record<string, unknown>, key: string, required: true): string;
function text(body: Record<string, unknown>, key: string, required?: false): string | null;
function text(body: Record<string, unknown>, key: string, required = false): string | null {
  const v = body[key];
  if (v === undefined || v === null) {
    if (required) throw new V2Error(400, "INVALID_REQUEST", `${key} is required`);
    return null;
  }
  if (typeof v !== "string") throw new V2Error(400, "INVALID_REQUEST", `${key} must be a string`);
  return v;
}

function whole(v: unknown, key: string, required: boolean): number | null {
  if (v === undefined || v === null) {
    if (required) throw new V2Error(400, "INVALID_REQUEST", `${key} is required`);
    return null;
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new V2Error(400, "INVALID_REQUEST", `${key} must be a non-negative integer`);
  return v;
}

/** V2's amount input `{total, taxFree?, vat?}`. */
function amountOf(v: unknown): { total: number; taxFree: number; vat: number | null } {
  if (!isObject(v)) throw new V2Error(400, "INVALID_REQUEST", "amount is required");
  const total = whole(v.total, "amount.total", true) as number;
  if (total === 0) throw new V2Error(400, "INVALID_REQUEST", "amount.total must be positive");
  const taxFree = whole(v.taxFree, "amount.taxFree", false) ?? 0;
  const vat = whole(v.vat, "amount.vat", false);
  if (taxFree > total) throw new V2Error(400, "INVALID_REQUEST", "amount.taxFree exceeds amount.total");
  return { total, taxFree, vat };
}

/** The customer's name as V2 takes it: `{full}` or `{separated: {first, last}}`. */
function customerName(c: Record<string, unknown>): string | null {
  const name = c.name;
  if (!isObject(name)) return null;
  if (typeof name.full === "string") return name.full;
  const sep = name.separated;
  if (isObject(sep) && typeof sep.first === "string" && typeof sep.last === "string") return `${sep.last}${sep.first}`;
  return null;
}

/** The customer as V2 answers it (only what was given). */
function customerWire(c: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof c.id === "string") out.id = c.id;
  const name = customerName(c);
  if (name) out.name = name;
  if (typeof c.email === "string") out.email = c.email;
  if (typeof c.phoneNumber === "string") out.phoneNumber = c.phoneNumber;
  return out;
}

/** V2's own records, as the state file keeps them (masked card data lives in the shared state). */
export interface V2Snapshot {
  keys: KeyInfo[];
  payments: Array<[paymentId: string, extra: PaymentExtra]>;
  schedules: Array<[scheduleId: string, paymentId: string]>;
}

export interface V2ApiDeps {
  state: IamportState;
  clock: Clock;
  credentials: V2Credentials;
  /** Webhooks caused by a call: sent in the background, never delaying its answer. */
  sendWebhooks(bodies: V2WebhookBody[]): void;
}

/** V2's records kept beside the shared state, and the routes that serve them. */
export class V2Api {
  readonly keys = new Map<string, KeyInfo>();
  private readonly extras = new Map<string, PaymentExtra>();
  private readonly scheduleIds = new Map<string, string>(); // schedule id → merchant_uid (paymentId)
  private readonly scheduleOf = new Map<string, string>(); // merchant_uid → schedule id
  /** Token → when it expires (emulator seconds). Tokens describe one run: not saved, not reset. */
  private readonly accessTokens = new Map<string, number>();
  private readonly refreshTokens = new Map<string, number>();
  readonly routes: V2Route[];

  constructor(private readonly deps: V2ApiDeps) {
    const r = (method: HttpMethod, template: string, handle: (c: V2Call) => V2Result, auth = true): V2Route => ({ method, template: compileTemplate(template), auth, handle });
    this.routes = [
      r("POST", "/login/api-secret", (c) => this.login(c), false),
      r("POST", "/token/refresh", (c) => this.refresh(c), false),
      r("POST", "/billing-keys", (c) => this.issueKey(c)),
      r("GET", "/billing-keys/{billingKey}", (c) => ({ status: 200, body: this.keyWire(this.key(c.params.billingKey)) })),
      r("DELETE", "/billing-keys/{billingKey}", (c) => this.deleteKey(c)),
      r("POST", "/payments/{paymentId}/billing-key", (c) => this.pay(c)),
      r("GET", "/payments/{paymentId}", (c) => ({ status: 200, body: this.paymentWire(this.payment(c.params.paymentId)) })),
      r("POST", "/payments/{paymentId}/cancel", (c) => this.cancel(c)),
      r("POST", "/payments/{paymentId}/schedule", (c) => this.createSchedule(c)),
      r("GET", "/payment-schedules/{paymentScheduleId}", (c) => ({ status: 200, body: this.scheduleWire(this.schedule(c.params.paymentScheduleId)) })),
      r("GET", "/payment-schedules", (c) => this.listSchedules(c)),
      r("DELETE", "/payment-schedules", (c) => this.revoke(c)),
    ];
  }

  /** Whether a call may go on: `PortOne <API secret>`, or `Bearer <access token>` from /login/api-secret. */
  isAuthorized(authorization: string): boolean {
    if (authorization === `PortOne ${this.deps.credentials.apiSecret}`) return true;
    const bearer = /^Bearer (.+)$/.exec(authorization)?.[1];
    const until = bearer ? this.accessTokens.get(bearer) : undefined;
    return until !== undefined && this.deps.clock.now() < until;
  }

  private tokens(): V2Result {
    const now = this.deps.clock.now();
    const accessToken = `access-token-${randomString(40)}`;
    const refreshToken = `refresh-token-${randomString(40)}`;
    this.accessTokens.set(accessToken, now + ACCESS_TOKEN_SECONDS);
    this.refreshTokens.set(refreshToken, now + REFRESH_TOKEN_SECONDS);
    // Forget expired tokens so a long run keeps a bounded map.
    for (const map of [this.accessTokens, this.refreshTokens]) {
      for (const [token, until] of map) if (until <= now) map.delete(token);
    }
    return { status: 200, body: { accessToken, refreshToken } };
  }

  private login({ body }: V2Call): V2Result {
    if (text(body, "apiSecret", true) !== this.deps.credentials.apiSecret) throw new V2Error(401, "UNAUTHORIZED", "API secret이 올바르지 않습니다.");
    return this.tokens();
  }

  private refresh({ body }: V2Call): V2Result {
    const token = text(body, "refreshToken", true);
    const until = this.refreshTokens.get(token);
    if (until === undefined || this.deps.clock.now() >= until) throw new V2Error(401, "UNAUTHORIZED", "refresh token이 만료되었거나 올바르지 않습니다.");
    this.refreshTokens.delete(token);
    return this.tokens();
  }

  /** True for payments made through V2 (their webhooks are V2's, not V1's). */
  ownsPayment(p: Payment): boolean {
    return p.customer_uid !== null && this.keys.has(p.customer_uid);
  }

  /** The V2 webhook of a charge's outcome (an API charge or a schedule run). */
  chargeWebhook(p: Payment): V2WebhookBody {
    return this.webhook(p.status === "paid" ? "Transaction.Paid" : "Transaction.Failed", { paymentId: p.merchant_uid, transactionId: p.imp_uid });
  }

  snapshot(): V2Snapshot {
    return { keys: [...this.keys.values()], payments: [...this.extras], schedules: [...this.scheduleIds] };
  }

  restore(saved: V2Snapshot): void {
    this.reset();
    for (const k of saved.keys) this.keys.set(k.billingKey, k);
    for (const [paymentId, extra] of saved.payments) this.extras.set(paymentId, extra);
    for (const [id, paymentId] of saved.schedules) {
      this.scheduleIds.set(id, paymentId);
      // Saved in creation order: the last schedule of a paymentId is its current one.
      this.scheduleOf.set(paymentId, id);
    }
  }

  reset(): void {
    this.keys.clear();
    this.extras.clear();
    this.scheduleIds.clear();
    this.scheduleOf.clear();
  }

  private webhook(type: V2WebhookType, data: Omit<V2WebhookBody["data"], "storeId">): V2WebhookBody {
    return { type, timestamp: iso(this.deps.clock.now()), data: { storeId: this.deps.credentials.storeId, ...data } };
  }

  private checkStore(body: Record<string, unknown>): void {
    const storeId = text(body, "storeId");
    if (storeId !== null && storeId !== this.deps.credentials.storeId) throw new V2Error(403, "FORBIDDEN", `unknown storeId: ${storeId}`);
  }

  // ---- billing keys ---------------------------------------------------------

  private issueKey({ body }: V2Call): V2Result {
    this.checkStore(body);
    const channelKey = text(body, "channelKey");
    if (channelKey !== null && channelKey !== this.deps.credentials.channelKey) throw new V2Error(404, "CHANNEL_NOT_FOUND", `unknown channelKey: ${channelKey}`);
    const method = body.method;
    const card = isObject(method) && isObject(method.card) ? method.card : null;
    const cred = card && isObject(card.credential) ? card.credential : null;
    if (!cred) throw new V2Error(400, "INVALID_REQUEST", "method.card.credential is required");
    const number = text(cred, "number", true);
    const year = text(cred, "expiryYear", true);
    const month = text(cred, "expiryMonth", true);
    if (!/^\d{2}(\d{2})?$/.test(year) || !/^\d{1,2}$/.test(month)) throw new V2Error(400, "INVALID_REQUEST", "expiryYear/expiryMonth are malformed");
    const customer = isObject(body.customer) ? body.customer : {};
    const billingKey = `billing-key-${randomUUID()}`;
    const fullYear = year.length === 2 ? `20${year}` : year;
    try {
      this.deps.state.issueBillingKey(billingKey, {
        card_number: number,
        expiry: `${fullYear}-${month.padStart(2, "0")}`,
        birth: text(cred, "birthOrBusinessRegistrationNumber"),
        pwd_2digit: text(cred, "passwordTwoDigits"),
        pg: null,
        customer_id: typeof customer.id === "string" ? customer.id : null,
        customer_name: customerName(customer),
        customer_tel: typeof customer.phoneNumber === "string" ? customer.phoneNumber : null,
        customer_email: typeof customer.email === "string" ? customer.email : null,
        customer_addr: null,
        customer_postcode: typeof customer.zipcode === "string" ? customer.zipcode : null,
      });
    } catch (e) {
      // A refused card is the PG's answer: V2 reports it as a PgProviderError.
      if (e instanceof IamportError) throw new V2Error(400, "PG_PROVIDER", e.message, { pgCode: pgCodeOf(e.message), pgMessage: e.message });
      throw e;
    }
    const now = this.deps.clock.now();
    this.keys.set(billingKey, { billingKey, issuedAt: now, deletedAt: null, customer, customData: text(body, "customData") });
    this.deps.sendWebhooks([this.webhook("BillingKey.Issued", { billingKey })]);
    return { status: 200, body: { billingKeyInfo: { billingKey, channels: [this.channelWire()], issuedAt: iso(now) } } };
  }

  private key(billingKey: string): KeyInfo {
    const k = this.keys.get(billingKey);
    if (!k) throw new V2Error(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.");
    return k;
  }

  private deleteKey({ params }: V2Call): V2Result {
    const k = this.key(params.billingKey);
    if (k.deletedAt !== null) throw new V2Error(409, "BILLING_KEY_ALREADY_DELETED", "빌링키가 이미 삭제되었습니다.");
    this.deps.state.deleteCustomer(k.billingKey);
    k.deletedAt = this.deps.clock.now();
    this.deps.sendWebhooks([this.webhook("BillingKey.Deleted", { billingKey: k.billingKey })]);
    return { status: 200, body: { deletedAt: iso(k.deletedAt) } };
  }

  private keyWire(k: KeyInfo) {
    const card = this.deps.state.customers.get(k.billingKey)?.card;
    return {
      status: k.deletedAt === null ? "ISSUED" : "DELETED",
      billingKey: k.billingKey,
      merchantId: MERCHANT_ID,
      storeId: this.deps.credentials.storeId,
      methods: card ? [{ type: "BillingKeyPaymentMethodCard", card: { name: card.cardName, number: card.masked } }] : [],
      channels: [this.channelWire()],
      customer: customerWire(k.customer),
      ...(k.customData !== null ? { customData: k.customData } : {}),
      issuedAt: iso(k.issuedAt),
      ...(k.deletedAt !== null ? { deletedAt: iso(k.deletedAt) } : {}),
    };
  }

  private channelWire() {
    return { type: "LIVE", key: this.deps.credentials.channelKey, name: "emulator", pgProvider: "NICEPAY_V2", pgMerchantId: "iamport00m" };
  }

  /** A billing key that can be charged: issued and not deleted. */
  private usableKey(body: Record<string, unknown>): KeyInfo {
    const k = this.keys.get(text(body, "billingKey", true));
    if (!k) throw new V2Error(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.");
    if (k.deletedAt !== null) throw new V2Error(400, "BILLING_KEY_ALREADY_DELETED", "삭제된 빌링키입니다.");
    return k;
  }

  private currencyOf(body: Record<string, unknown>): string {
    const currency = text(body, "currency", true);
    if (currency !== "KRW") throw new V2Error(400, "INVALID_REQUEST", `currency ${currency} is not supported (KRW only)`);
    return currency;
  }

  // ---- payments -------------------------------------------------------------

  private pay({ params, body }: V2Call): V2Result {
    this.checkStore(body);
    const paymentId = params.paymentId;
    const k = this.usableKey(body);
    const orderName = text(body, "orderName", true);
    const amount = amountOf(body.amount);
    const currency = this.currencyOf(body);
    if (this.deps.state.findPayment(paymentId, "paid") || this.deps.state.findPayment(paymentId, "cancelled")) {
      throw new V2Error(409, "ALREADY_PAID", "이미 결제가 완료된 결제 건입니다.");
    }
    const customer = isObject(body.customer) ? body.customer : k.customer;
    const p = this.deps.state.chargeAgain(k.billingKey, {
      merchant_uid: paymentId,
      amount: amount.total,
      name: orderName,
      currency,
      custom_data: text(body, "customData"),
      notice_url: null,
      card_quota: whole(body.installmentMonth, "installmentMonth", false) ?? 0,
      buyer_name: customerName(customer),
      buyer_email: typeof customer.email === "string" ? customer.email : null,
      buyer_tel: typeof customer.phoneNumber === "string" ? customer.phoneNumber : null,
      buyer_addr: null,
      buyer_postcode: null,
    });
    this.extras.set(paymentId, { billingKey: k.billingKey, orderName, taxFree: amount.taxFree, vat: amount.vat, customData: text(body, "customData"), customer, scheduleId: null, createdAt: p.started_at });
    if (body.skipWebhook !== true) this.deps.sendWebhooks([this.chargeWebhook(p)]);
    if (p.status !== "paid") {
      // V2 answers a decline with an HTTP error; the failed payment stays readable.
      throw new V2Error(400, "PG_PROVIDER", p.fail_reason ?? "결제가 거절되었습니다.", { pgCode: pgCodeOf(p.fail_reason), pgMessage: p.fail_reason ?? "" });
    }
    return { status: 200, body: { payment: { pgTxId: p.pg_tid, paidAt: iso(p.paid_at) } } };
  }

  private payment(paymentId: string): Payment {
    const p = this.deps.state.findPayment(paymentId);
    if (!p || !this.extras.has(paymentId)) throw new V2Error(404, "PAYMENT_NOT_FOUND", "결제 건이 존재하지 않습니다.");
    return p;
  }

  paymentWire(p: Payment) {
    const x = this.extras.get(p.merchant_uid) as PaymentExtra;
    const partial = p.status === "paid" && p.cancel_amount > 0;
    const status = partial ? "PARTIAL_CANCELLED" : p.status === "paid" ? "PAID" : p.status === "cancelled" ? "CANCELLED" : p.status === "failed" ? "FAILED" : "READY";
    const vat = x.vat ?? Math.round((p.amount - x.taxFree) / 11);
    const base = {
      status,
      id: p.merchant_uid,
      transactionId: p.imp_uid,
      merchantId: MERCHANT_ID,
      storeId: this.deps.credentials.storeId,
      method: { type: "PaymentMethodCard", card: { name: p.card_name, number: p.card_number }, ...(p.apply_num ? { approvalNumber: p.apply_num } : {}) },
      channel: this.channelWire(),
      version: "V2",
      ...(x.scheduleId ? { scheduleId: x.scheduleId } : {}),
      billingKey: x.billingKey,
      requestedAt: iso(p.started_at),
      updatedAt: iso(Math.max(p.started_at, p.paid_at, p.failed_at, p.cancelled_at)),
      statusChangedAt: iso(Math.max(p.started_at, p.paid_at, p.failed_at, p.cancelled_at)),
      orderName: x.orderName,
      amount: {
        total: p.amount,
        taxFree: x.taxFree,
        vat,
        supply: p.amount - x.taxFree - vat,
        discount: 0,
        paid: p.status === "failed" ? 0 : p.amount,
        cancelled: p.cancel_amount,
        cancelledTaxFree: 0,
      },
      currency: p.currency,
      customer: customerWire(x.customer),
      origin: "API",
      ...(x.customData !== null ? { customData: x.customData } : {}),
    };
    if (p.status === "failed") {
      return { ...base, failedAt: iso(p.failed_at), failure: { reason: p.fail_reason ?? "", pgCode: pgCodeOf(p.fail_reason), pgMessage: p.fail_reason ?? "" } };
    }
    const paid = { ...base, paidAt: iso(p.paid_at), pgTxId: p.pg_tid, receiptUrl: p.receipt_url, disputes: [] };
    if (p.cancel_amount === 0) return paid;
    return { ...paid, cancelledAt: iso(p.cancelled_at), cancellations: p.cancel_history.map((c) => this.cancellationWire(c)) };
  }

  private cancellationWire(c: Payment["cancel_history"][number]) {
    return {
      status: "SUCCEEDED",
      id: c.cancellation_id,
      pgCancellationId: c.pg_tid,
      totalAmount: c.amount,
      taxFreeAmount: 0,
      vatAmount: Math.round(c.amount / 11),
      reason: c.reason,
      cancelledAt: iso(c.cancelled_at),
      requestedAt: iso(c.cancelled_at),
      receiptUrl: c.receipt_url,
    };
  }

  private cancel({ params, body }: V2Call): V2Result {
    this.checkStore(body);
    const p = this.payment(params.paymentId);
    const reason = text(body, "reason", true);
    const amount = whole(body.amount, "amount", false);
    const current = whole(body.currentCancellableAmount, "currentCancellableAmount", false);
    if (p.status === "cancelled") throw new V2Error(409, "PAYMENT_ALREADY_CANCELLED", "이미 취소된 결제 건입니다.");
    if (p.status !== "paid") throw new V2Error(409, "PAYMENT_NOT_PAID", "결제가 완료되지 않은 결제 건입니다.");
    const balance = p.amount - p.cancel_amount;
    if (current !== null && current !== balance) {
      throw new V2Error(409, "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN", `취소 가능 잔액 검증에 실패했습니다. (취소가능잔액: ${balance}, currentCancellableAmount: ${current})`);
    }
    if (amount !== null && amount > balance) {
      throw new V2Error(409, "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT", `취소 요청 금액(${amount})이 취소 가능 금액(${balance})보다 큽니다.`);
    }
    const after = this.deps.state.cancel({ imp_uid: p.imp_uid, merchant_uid: null, amount: amount && amount > 0 ? amount : null, checksum: null, reason });
    const last = after.cancel_history[after.cancel_history.length - 1];
    if (body.skipWebhook !== true) {
      const type = after.status === "cancelled" ? "Transaction.Cancelled" : "Transaction.PartialCancelled";
      this.deps.sendWebhooks([this.webhook(type, { paymentId: after.merchant_uid, transactionId: after.imp_uid, cancellationId: last.cancellation_id })]);
    }
    return { status: 200, body: { cancellation: this.cancellationWire(last) } };
  }

  // ---- schedules ------------------------------------------------------------

  private createSchedule({ params, body }: V2Call): V2Result {
    const paymentId = params.paymentId;
    const payment = isObject(body.payment) ? body.payment : null;
    if (!payment) throw new V2Error(400, "INVALID_REQUEST", "payment is required");
    this.checkStore(payment);
    const timeToPay = text(body, "timeToPay", true);
    const at = Date.parse(timeToPay);
    if (!Number.isFinite(at)) throw new V2Error(400, "INVALID_REQUEST", "timeToPay must be an RFC 3339 date-time");
    const k = this.usableKey(payment);
    const orderName = text(payment, "orderName", true);
    const amount = amountOf(payment.amount);
    const currency = this.currencyOf(payment);
    if (this.scheduleOf.has(paymentId) && this.deps.state.getSchedule(paymentId).schedule_status === "scheduled") {
      throw new V2Error(409, "PAYMENT_SCHEDULE_ALREADY_EXISTS", "이미 결제 예약된 결제 건입니다.");
    }
    if (this.deps.state.findPayment(paymentId, "paid")) throw new V2Error(409, "ALREADY_PAID", "이미 결제가 완료된 결제 건입니다.");
    const customer = isObject(payment.customer) ? payment.customer : k.customer;
    try {
      this.deps.state.schedule(
        k.billingKey,
        [
          {
            merchant_uid: paymentId,
            schedule_at: Math.floor(at / 1000),
            amount: amount.total,
            name: orderName,
            currency,
            custom_data: text(payment, "customData"),
            notice_url: null,
            tax_free: amount.taxFree,
            vat_amount: amount.vat,
            card_quota: whole(payment.installmentMonth, "installmentMonth", false) ?? 0,
            buyer_name: customerName(customer),
            buyer_email: typeof customer.email === "string" ? customer.email : null,
            buyer_tel: typeof customer.phoneNumber === "string" ? customer.phoneNumber : null,
            buyer_addr: null,
            buyer_postcode: null,
          },
        ],
        null,
      );
    } catch (e) {
      if (e instanceof IamportError) throw new V2Error(400, "INVALID_REQUEST", e.message);
      throw e;
    }
    const id = `payment-schedule-${randomString(20)}`;
    this.scheduleIds.set(id, paymentId);
    this.scheduleOf.set(paymentId, id);
    this.extras.set(paymentId, { billingKey: k.billingKey, orderName, taxFree: amount.taxFree, vat: amount.vat, customData: text(payment, "customData"), customer, scheduleId: id, createdAt: this.deps.clock.now() });
    return { status: 200, body: { schedule: { id } } };
  }

  private schedule(id: string): Schedule {
    const paymentId = this.scheduleIds.get(id);
    // A later schedule of the same paymentId replaces this one as its current schedule.
    if (!paymentId || this.scheduleOf.get(paymentId) !== id) throw new V2Error(404, "PAYMENT_SCHEDULE_NOT_FOUND", "결제 예약 건이 존재하지 않습니다.");
    return this.deps.state.getSchedule(paymentId);
  }

  private scheduleWire(s: Schedule) {
    const x = this.extras.get(s.merchant_uid) as PaymentExtra;
    const p = s.imp_uid ? this.deps.state.getPayment(s.imp_uid) : undefined;
    const status =
      s.schedule_status === "scheduled" ? "SCHEDULED" : s.schedule_status === "revoked" ? "REVOKED" : p?.status === "paid" || p?.status === "cancelled" ? "SUCCEEDED" : "FAILED";
    return {
      status,
      id: this.scheduleOf.get(s.merchant_uid),
      merchantId: MERCHANT_ID,
      storeId: this.deps.credentials.storeId,
      paymentId: s.merchant_uid,
      billingKey: s.customer_uid,
      orderName: s.name,
      isCulturalExpense: false,
      isEscrow: false,
      customer: customerWire(x.customer),
      customData: s.custom_data ?? "",
      totalAmount: s.amount,
      taxFreeAmount: s.tax_free ?? 0,
      ...(s.vat_amount !== null ? { vatAmount: s.vat_amount } : {}),
      currency: s.currency,
      installmentMonth: s.card_quota,
      createdAt: iso(x.createdAt),
      timeToPay: iso(s.schedule_at),
      ...(status === "REVOKED" ? { revokedAt: iso(s.revoked_at) } : {}),
      ...(status === "SUCCEEDED" || status === "FAILED" ? { startedAt: iso(s.executed_at), completedAt: iso(s.executed_at) } : {}),
    };
  }

  private listSchedules({ query }: V2Call): V2Result {
    const req = this.requestBody(query);
    const filter = isObject(req.filter) ? req.filter : {};
    const page = isObject(req.page) ? req.page : {};
    const number = whole(page.number, "page.number", false) ?? 0;
    const size = whole(page.size, "page.size", false) ?? 10;
    const billingKey = text(filter, "billingKey");
    const from = text(filter, "from");
    const until = text(filter, "until");
    const statuses = Array.isArray(filter.status) ? new Set(filter.status as unknown[]) : null;
    const fromAt = from ? Date.parse(from) / 1000 : -Infinity;
    const untilAt = until ? Date.parse(until) / 1000 : Infinity;
    const items = [...this.scheduleOf.values()]
      .map((id) => this.scheduleWire(this.schedule(id)))
      .filter((s) => (!billingKey || s.billingKey === billingKey) && (!statuses || statuses.has(s.status)))
      .filter((s) => {
        const at = Date.parse(s.timeToPay) / 1000;
        return at >= fromAt && at < untilAt;
      })
      .sort((a, b) => Date.parse(a.timeToPay) - Date.parse(b.timeToPay));
    return { status: 200, body: { items: items.slice(number * size, (number + 1) * size), page: { number, size, totalCount: items.length } } };
  }

  private revoke({ query, body }: V2Call): V2Result {
    // @portone/server-sdk sends this DELETE's body as a `requestBody` query parameter.
    const req = Object.keys(body).length > 0 ? body : this.requestBody(query);
    this.checkStore(req);
    const billingKey = text(req, "billingKey");
    const ids = Array.isArray(req.scheduleIds) ? (req.scheduleIds as unknown[]) : null;
    if (!billingKey && !ids) throw new V2Error(400, "INVALID_REQUEST", "billingKey or scheduleIds is required");
    let targets: Schedule[];
    if (ids) {
      targets = ids.map((id) => this.schedule(String(id)));
      for (const s of targets) {
        if (s.schedule_status === "revoked") throw new V2Error(409, "PAYMENT_SCHEDULE_ALREADY_REVOKED", "이미 취소된 결제 예약입니다.");
        if (s.schedule_status !== "scheduled") throw new V2Error(409, "PAYMENT_SCHEDULE_ALREADY_PROCESSED", "이미 처리된 결제 예약입니다.");
      }
      if (billingKey) targets = targets.filter((s) => s.customer_uid === billingKey);
    } else {
      this.key(billingKey as string);
      targets = [...this.scheduleOf.keys()].map((m) => this.deps.state.getSchedule(m)).filter((s) => s.customer_uid === billingKey && s.schedule_status === "scheduled");
    }
    const revoked = targets.length > 0 ? this.deps.state.unschedule(null, targets.map((s) => s.merchant_uid)) : [];
    return {
      status: 200,
      body: { revokedScheduleIds: revoked.map((s) => this.scheduleOf.get(s.merchant_uid)), ...(revoked.length > 0 ? { revokedAt: iso(revoked[0].revoked_at) } : {}) },
    };
  }

  private requestBody(query: URLSearchParams): Record<string, unknown> {
    const raw = query.get("requestBody");
    if (!raw) return {};
    try {
      const v: unknown = JSON.parse(raw);
      return isObject(v) ? v : {};
    } catch {
      throw new V2Error(400, "INVALID_REQUEST", "requestBody is not JSON");
    }
  }
}
