import crypto from "node:crypto";
import axios, { AxiosError, AxiosInstance, AxiosResponse, Method } from "axios";
import type { Logger } from "pino";
import { iamportAgents, nodeHttpAdapter } from "../iamport/http-adapter";
import {
  IamportNotFoundError,
  IamportRefusedError,
  IamportTimeoutError,
  IamportUnauthorizedError,
  IamportUnavailableError,
  WebhookRejectedError,
  type CallOptions,
  type CancelRequest,
  type ChargeRequest,
  type IssueKeyRequest,
  type PaymentProvider,
  type ProviderCard,
  type ProviderPayment,
  type ProviderPaymentStatus,
  type ProviderSchedule,
  type ProviderWebhook,
  type ScheduleRequest,
} from "./port";

/** Where the adapter finds the billing key V2 issued for a customer or an order (the cards table). */
export interface BillingKeyLookup {
  ofCustomer(customerUid: string): Promise<string | null>;
  ofOrder(merchantUid: string): Promise<string | null>;
}

export interface PortOneV2Options {
  baseUrl: string;
  apiSecret: string;
  storeId?: string;
  channelKey: string;
  webhookSecret: string;
  timeoutMs: number;
  logger: Logger;
  keys: BillingKeyLookup;
  /** The provider's clock (UNIX seconds); default this machine's. The emulator's is read from its control API. */
  clock?: () => Promise<number>;
  onCall?: (endpoint: string, outcome: string, seconds: number) => void;
}

/** Standard Webhooks: a signature older or newer than this is refused (replays). */
const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

/** PortOne's error types that mean "nothing of that name": a 404 whatever the status. */
const NOT_FOUND = /_NOT_FOUND$/;

/**
 * PortOne V2 behind the port. V2 issues the billing key (kept on the card and
 * found by customer_uid or by order through `keys`); the order's merchant_uid
 * is V2's paymentId, so a repeat of the same order cannot charge twice; a
 * decline is an HTTP error, turned here into the failed payment it left; a
 * schedule is one call per payment; a cancel carries currentCancellableAmount.
 * Calls authenticate with `Authorization: PortOne <API secret>`: no token to
 * keep or refresh.
 */
export class PortOneV2Provider implements PaymentProvider {
  readonly name = "v2" as const;
  readonly label = "PortOne" as const;
  private readonly http: AxiosInstance;
  private readonly webhookKey: Buffer;
  private secretCheckedUntil = 0;

  constructor(private readonly o: PortOneV2Options) {
    this.http = axios.create({
      baseURL: o.baseUrl.replace(/\/+$/, ""),
      timeout: o.timeoutMs,
      validateStatus: () => true,
      maxRedirects: 0,
      adapter: nodeHttpAdapter(iamportAgents(64)),
    });
    this.http.defaults.headers = { "Content-Type": "application/json", Accept: "application/json" } as unknown as typeof this.http.defaults.headers;
    this.webhookKey = Buffer.from(o.webhookSecret.replace(/^whsec_/, ""), "base64");
  }

  // ---- billing keys ---------------------------------------------------------

  /**
   * Issues a new billing key. V2 names a new key for every card, where V1
   * replaces the card behind the same customer_uid: so that a replacement
   * means the same here, the charges registered on the customer's previous
   * key move to the new one (revoked, then registered again under the same
   * paymentId and time), and the previous key is deleted once none is left on it.
   */
  async issueKey(customerUid: string, r: IssueKeyRequest, o?: CallOptions): Promise<ProviderCard> {
    const previous = await this.o.keys.ofCustomer(customerUid);
    const card = await this.issue(r, o);
    if (previous && previous !== card.billingKey) await this.moveSchedules(customerUid, previous, card.billingKey!, o);
    return card;
  }

  private async moveSchedules(customerUid: string, from: string, to: string, o?: CallOptions): Promise<void> {
    const log = this.o.logger;
    let moved = 0;
    try {
      const pending = await this.schedulesOf(from, o, ["SCHEDULED"]);
      for (const s of pending) {
        const [revoked] = await this.revokeIds([s.id], o);
        if (revoked !== s.id) continue;
        const payment = {
          ...this.store(),
          billingKey: to,
          orderName: s.orderName,
          amount: { total: s.totalAmount, ...(s.taxFreeAmount ? { taxFree: s.taxFreeAmount } : {}), ...(s.vatAmount !== undefined ? { vat: s.vatAmount } : {}) },
          currency: s.currency,
          // V2 answers a customer's name as text and takes it as {full}.
          customer: customer(s.customer?.id, s.customer?.name, s.customer?.email, s.customer?.phoneNumber),
          ...(s.customData ? { customData: s.customData } : {}),
        };
        try {
          await this.call("POST", `/payments/${enc(s.paymentId)}/schedule`, "POST /payments/{paymentId}/schedule", o, { payment, timeToPay: s.timeToPay });
          moved++;
        } catch (err) {
          // Back on the previous key rather than nowhere: the charge stays registered.
          await this.call("POST", `/payments/${enc(s.paymentId)}/schedule`, "POST /payments/{paymentId}/schedule", o, {
            payment: { ...payment, billingKey: from },
            timeToPay: s.timeToPay,
          });
          throw err;
        }
      }
      await this.call("DELETE", `/billing-keys/${enc(from)}`, "DELETE /billing-keys/{billingKey}", o);
    } catch (err) {
      // The card is replaced either way; what is left on the previous key still charges the previous card.
      log.warn({ customerUid, moved, err: (err as Error).message }, "charges registered on the replaced billing key were not all moved to the new one");
    }
  }

  private async issue(r: IssueKeyRequest, o?: CallOptions): Promise<ProviderCard> {
    const [year, month] = r.expiry.split("-");
    const issued = await this.call<{ billingKeyInfo: { billingKey: string } }>("POST", "/billing-keys", "POST /billing-keys", o, {
      ...this.store(),
      channelKey: this.o.channelKey,
      method: {
        card: {
          credential: {
            number: r.cardNumber.replace(/\D/g, ""),
            expiryYear: year.slice(-2),
            expiryMonth: month,
            birthOrBusinessRegistrationNumber: r.birth,
            ...(r.pwd2digit ? { passwordTwoDigits: r.pwd2digit } : {}),
          },
        },
      },
      customer: customer(r.customerId, r.customerName, r.customerEmail, r.customerTel),
    });
    const billingKey = issued.billingKeyInfo.billingKey;
    try {
      return await this.keyCard(billingKey, o);
    } catch {
      // The key exists; its card details are only for display.
      return { billingKey };
    }
  }

  /**
   * Without `billingKey`: the customer's recorded key, as PortOne holds it.
   * With one the browser was given: PortOne's record of it, which must be
   * live and name customerUid as its customer (so a key issued for someone
   * else cannot be attached to this customer); when it replaces the recorded
   * key, the charges registered on that one move to it, as in issueKey.
   */
  async getKey(customerUid: string, billingKey?: string, o?: CallOptions): Promise<ProviderCard> {
    const endpoint = "GET /billing-keys/{billingKey}";
    if (billingKey === undefined) return this.keyCard(await this.keyOf(customerUid, endpoint), o);
    const recorded = await this.o.keys.ofCustomer(customerUid);
    const card = await this.keyCard(billingKey, o);
    if (billingKey !== recorded && card.customer_id !== customerUid) {
      throw new IamportRefusedError(
        -1,
        `BILLING_KEY_CUSTOMER_MISMATCH: the billing key was not issued for customer ${customerUid} (issue it with customer.customerId set to the customer_uid)`,
        403,
        endpoint,
        "PortOne",
      );
    }
    if (recorded && recorded !== billingKey) await this.moveSchedules(customerUid, recorded, billingKey, o);
    return card;
  }

  async deleteKey(customerUid: string, o?: CallOptions): Promise<void> {
    const key = await this.keyOf(customerUid, "DELETE /billing-keys/{billingKey}");
    try {
      await this.call("DELETE", `/billing-keys/${enc(key)}`, "DELETE /billing-keys/{billingKey}", o);
    } catch (err) {
      // Deleted before: the goal is reached.
      if (err instanceof IamportRefusedError && err.iamportMessage.startsWith("BILLING_KEY_ALREADY_DELETED")) return;
      throw err;
    }
  }

  private async keyCard(billingKey: string, o?: CallOptions): Promise<ProviderCard> {
    const k = await this.call<V2BillingKey>("GET", `/billing-keys/${enc(billingKey)}`, "GET /billing-keys/{billingKey}", o);
    // A deleted key charges nothing: as good as none.
    if (k.status === "DELETED") throw new IamportNotFoundError(`billing key ${billingKey} is deleted`, "GET /billing-keys/{billingKey}", "PortOne");
    const card = k.methods?.find((m) => m.card)?.card;
    const channel = k.channels?.[0];
    return {
      billingKey,
      customer_id: k.customer?.id ?? null,
      card_name: card?.name ?? null,
      card_number: card?.number ?? null,
      card_type: card?.type === "CREDIT" ? 0 : card?.type === "DEBIT" ? 1 : null,
      pg_provider: channel?.pgProvider ?? null,
      pg_id: channel?.pgMerchantId ?? null,
    };
  }

  private async keyOf(customerUid: string, endpoint: string): Promise<string> {
    const key = await this.o.keys.ofCustomer(customerUid);
    if (!key) throw new IamportNotFoundError(`no V2 billing key is recorded for ${customerUid}`, endpoint, "PortOne");
    return key;
  }

  // ---- charges --------------------------------------------------------------

  async charge(r: ChargeRequest, o?: CallOptions): Promise<ProviderPayment> {
    const endpoint = "POST /payments/{paymentId}/billing-key";
    const billingKey = await this.keyOf(r.customerUid, endpoint);
    try {
      await this.call("POST", `/payments/${enc(r.merchantUid)}/billing-key`, endpoint, o, { ...this.store(), billingKey, ...this.paymentInput(r) });
    } catch (err) {
      // V2 answers a decline with an HTTP error; the failed payment it leaves is the answer, as V1's is.
      if (!(err instanceof IamportRefusedError) || !err.iamportMessage.startsWith("PG_PROVIDER")) throw err;
      try {
        return await this.getPayment(r.merchantUid, o);
      } catch {
        return { imp_uid: r.merchantUid, merchant_uid: r.merchantUid, amount: r.amount, cancel_amount: 0, currency: r.currency ?? "KRW", status: "failed", fail_reason: err.iamportMessage.replace(/^PG_PROVIDER: /, "") };
      }
    }
    return this.getPayment(r.merchantUid, o);
  }

  private paymentInput(r: Omit<ChargeRequest, "customerUid">) {
    return {
      orderName: r.name,
      amount: { total: r.amount, ...(r.taxFree !== undefined ? { taxFree: r.taxFree } : {}), ...(r.vat !== undefined ? { vat: r.vat } : {}) },
      currency: r.currency ?? "KRW",
      customer: customer(undefined, r.buyerName, r.buyerEmail, r.buyerTel),
      ...(r.customData !== undefined ? { customData: r.customData } : {}),
    };
  }

  // ---- schedules ------------------------------------------------------------

  /**
   * One call per payment (V2 has no batch). A refusal part-way revokes what
   * this call registered before it, so the batch is all or nothing, as V1's is.
   */
  async schedule(customerUid: string, entries: ScheduleRequest[], o?: CallOptions): Promise<ProviderSchedule[]> {
    const endpoint = "POST /payments/{paymentId}/schedule";
    const billingKey = await this.keyOf(customerUid, endpoint);
    const done: { id: string; s: ProviderSchedule }[] = [];
    for (const e of entries) {
      try {
        const r = await this.call<{ schedule: { id: string } }>("POST", `/payments/${enc(e.merchantUid)}/schedule`, endpoint, o, {
          payment: { ...this.store(), billingKey, ...this.paymentInput(e) },
          timeToPay: new Date(e.at * 1000).toISOString(),
        });
        done.push({ id: r.schedule.id, s: { merchant_uid: e.merchantUid, imp_uid: null, schedule_at: e.at, schedule_status: "scheduled", amount: e.amount } });
      } catch (err) {
        if (err instanceof IamportRefusedError && done.length > 0) {
          await this.revokeIds(done.map((d) => d.id), o).catch((e2: Error) =>
            this.o.logger.warn({ err: e2.message, merchantUids: done.map((d) => d.s.merchant_uid) }, "schedules registered before a refusal could not be revoked"),
          );
        }
        throw err;
      }
    }
    return done.map((d) => d.s);
  }

  async revoke(customerUid: string, merchantUids?: string[], o?: CallOptions): Promise<ProviderSchedule[]> {
    const billingKey = await this.o.keys.ofCustomer(customerUid);
    if (!billingKey) return [];
    const wanted = merchantUids ? new Set(merchantUids) : null;
    const pending = (await this.schedulesOf(billingKey, o, ["SCHEDULED"])).filter((s) => !wanted || wanted.has(s.paymentId));
    if (pending.length === 0) return [];
    const revoked = await this.revokeIds(pending.map((s) => s.id), o);
    const ids = new Set(revoked);
    return pending.filter((s) => ids.has(s.id)).map((s) => ({ ...schedule(s), schedule_status: "revoked" as const }));
  }

  async getSchedule(merchantUid: string, o?: CallOptions): Promise<ProviderSchedule> {
    const endpoint = "GET /payment-schedules";
    const billingKey = await this.o.keys.ofOrder(merchantUid);
    if (!billingKey) throw new IamportNotFoundError(`no V2 billing key is recorded for order ${merchantUid}`, endpoint, "PortOne");
    // The latest schedule of the paymentId is its current one.
    const found = (await this.schedulesOf(billingKey, o)).filter((s) => s.paymentId === merchantUid).pop();
    if (!found) throw new IamportNotFoundError(`no schedule for ${merchantUid}`, endpoint, "PortOne");
    return schedule(found);
  }

  private async schedulesOf(billingKey: string, o: CallOptions | undefined, status?: string[]): Promise<V2Schedule[]> {
    const out: V2Schedule[] = [];
    const size = 100;
    for (let number = 0; ; number++) {
      const body = { page: { number, size }, filter: { ...this.store(), billingKey, ...(status ? { status } : {}) } };
      const r = await this.call<{ items: V2Schedule[]; page: { totalCount: number } }>(
        "GET",
        `/payment-schedules?requestBody=${encodeURIComponent(JSON.stringify(body))}`,
        "GET /payment-schedules",
        o,
      );
      out.push(...r.items);
      if (r.items.length < size || out.length >= r.page.totalCount) return out;
    }
  }

  private async revokeIds(scheduleIds: string[], o?: CallOptions): Promise<string[]> {
    const body = { ...this.store(), scheduleIds };
    const r = await this.call<{ revokedScheduleIds: string[] }>("DELETE", `/payment-schedules?requestBody=${encodeURIComponent(JSON.stringify(body))}`, "DELETE /payment-schedules", o);
    return r.revokedScheduleIds;
  }

  // ---- payments -------------------------------------------------------------

  async getPayment(impUid: string, o?: CallOptions): Promise<ProviderPayment> {
    const p = await this.call<V2Payment>("GET", `/payments/${enc(impUid)}`, "GET /payments/{paymentId}", o);
    return payment(p);
  }

  findByOrder(merchantUid: string, o?: CallOptions): Promise<ProviderPayment> {
    return this.getPayment(merchantUid, o);
  }

  async cancel(r: CancelRequest, o?: CallOptions): Promise<ProviderPayment> {
    const paymentId = r.merchantUid ?? r.impUid!;
    await this.call("POST", `/payments/${enc(paymentId)}/cancel`, "POST /payments/{paymentId}/cancel", o, {
      ...this.store(),
      ...(r.amount !== undefined ? { amount: r.amount } : {}),
      ...(r.taxFree !== undefined ? { taxFreeAmount: r.taxFree } : {}),
      ...(r.vat !== undefined ? { vatAmount: r.vat } : {}),
      reason: r.reason,
      currentCancellableAmount: r.cancellable,
    });
    return this.getPayment(paymentId, o);
  }

  async prepare(): Promise<void> {
    // V2 checks a browser payment's amount against the order when the server verifies it; nothing to register first.
  }

  /** Checks the API secret (readiness): once a minute at most, since probes come every few seconds. */
  async ensureToken(): Promise<void> {
    if (Date.now() < this.secretCheckedUntil) return;
    await this.call("POST", "/login/api-secret", "POST /login/api-secret", undefined, { apiSecret: this.o.apiSecret }, false);
    this.secretCheckedUntil = Date.now() + 60_000;
  }

  async serverNow(): Promise<number> {
    return this.o.clock ? this.o.clock() : Math.floor(Date.now() / 1000);
  }

  // ---- webhooks -------------------------------------------------------------

  /** Standard Webhooks: HMAC-SHA256 of "id.timestamp.body" with the whsec_ secret, timestamps within five minutes. */
  parseWebhook(rawBody: string, headers: Record<string, string | string[] | undefined>): ProviderWebhook {
    const header = (name: string): string | undefined => {
      const v = headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const id = header("webhook-id");
    const timestamp = header("webhook-timestamp");
    const signatures = header("webhook-signature");
    if (!id || !timestamp || !signatures) throw new WebhookRejectedError("webhook-id, webhook-timestamp and webhook-signature are required", 400);
    if (!/^\d{1,12}$/.test(timestamp)) throw new WebhookRejectedError("webhook-timestamp is not UNIX seconds", 400);
    // Real time on both sides: the signature's age is about the delivery, not the billing clock.
    if (Math.abs(Date.now() / 1000 - Number(timestamp)) > WEBHOOK_TOLERANCE_SECONDS) throw new WebhookRejectedError("webhook-timestamp is too old or too new", 401);
    const expected = crypto.createHmac("sha256", this.webhookKey).update(`${id}.${timestamp}.${rawBody}`).digest();
    const matches = signatures.split(" ").some((s) => {
      const [version, sig] = s.split(",");
      if (version !== "v1" || !sig) return false;
      const given = Buffer.from(sig, "base64");
      return given.length === expected.length && crypto.timingSafeEqual(given, expected);
    });
    if (!matches) throw new WebhookRejectedError("webhook-signature does not match", 401);
    let body: unknown;
    try {
      body = JSON.parse(rawBody);
    } catch {
      throw new WebhookRejectedError("the body is not JSON", 400);
    }
    const b = (typeof body === "object" && body !== null ? body : {}) as { type?: unknown; data?: Record<string, unknown> };
    const type = typeof b.type === "string" ? b.type.slice(0, 60) : "";
    const data = typeof b.data === "object" && b.data !== null ? b.data : {};
    const str = (k: string) => (typeof data[k] === "string" && (data[k] as string).length <= 200 ? (data[k] as string) : undefined);
    if (type.startsWith("Transaction.")) {
      const paymentId = str("paymentId");
      if (!paymentId) return { kind: "ignored", type };
      return { kind: "payment", type, merchantUid: paymentId, impUid: paymentId, cancellationId: str("cancellationId") };
    }
    if (type.startsWith("BillingKey.")) {
      const billingKey = str("billingKey");
      if (billingKey) return { kind: "billing-key", type, billingKey };
    }
    return { kind: "ignored", type };
  }

  // ---- transport ------------------------------------------------------------

  private store(): { storeId?: string } {
    return this.o.storeId ? { storeId: this.o.storeId } : {};
  }

  private async call<T>(method: Method, url: string, endpoint: string, o: CallOptions | undefined, data?: unknown, auth = true): Promise<T> {
    const started = process.hrtime.bigint();
    let res: AxiosResponse<unknown>;
    try {
      res = await this.http.request({
        method,
        url,
        data,
        headers: { ...(auth ? { Authorization: `PortOne ${this.o.apiSecret}` } : {}), ...(o?.requestId ? { "X-Request-Id": o.requestId } : {}) },
      });
    } catch (err) {
      const ax = err as AxiosError;
      if (ax.code === "ECONNABORTED" || ax.code === "ETIMEDOUT" || ax.code === "ERR_CANCELED") {
        this.record(endpoint, "timeout", started, undefined, o);
        throw new IamportTimeoutError(`PortOne did not answer ${endpoint} within ${this.o.timeoutMs} ms`, endpoint, { provider: "PortOne" });
      }
      this.record(endpoint, "network", started, undefined, o);
      // Only the error code: axios errors carry the request body.
      throw new IamportUnavailableError(`PortOne is unreachable for ${endpoint} (${ax.code ?? "network error"})`, endpoint, { notSent: ax.code === "ECONNREFUSED", provider: "PortOne" });
    }
    const body = (res.data ?? {}) as { type?: string; message?: string };
    if (res.status >= 200 && res.status < 300) {
      this.record(endpoint, "ok", started, res.status, o);
      return res.data as T;
    }
    const type = typeof body.type === "string" ? body.type : `HTTP_${res.status}`;
    const message = `${type}: ${typeof body.message === "string" ? body.message : ""}`.slice(0, 500);
    if (res.status === 401 || res.status === 403) {
      this.record(endpoint, "unauthorized", started, res.status, o);
      throw new IamportUnauthorizedError(`PortOne refused the API secret (HTTP ${res.status}): check PORTONE_API_SECRET and PORTONE_STORE_ID`, endpoint, { provider: "PortOne" });
    }
    if (res.status >= 500) {
      this.record(endpoint, "unavailable", started, res.status, o);
      throw new IamportUnavailableError(`PortOne answered HTTP ${res.status} to ${endpoint}`, endpoint, { provider: "PortOne" });
    }
    if (res.status === 404 || NOT_FOUND.test(type)) {
      this.record(endpoint, "not_found", started, res.status, o);
      throw new IamportNotFoundError(message, endpoint, "PortOne");
    }
    this.record(endpoint, "refused", started, res.status, o);
    throw new IamportRefusedError(-1, message, res.status, endpoint, "PortOne");
  }

  private record(endpoint: string, outcome: string, started: bigint, status: number | undefined, o: CallOptions | undefined): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.o.onCall?.(endpoint, outcome, seconds);
    const level = outcome === "ok" || outcome === "refused" || outcome === "not_found" ? "info" : "warn";
    this.o.logger[level]({ portone: { endpoint, outcome, status, ms: Math.round(seconds * 1000) }, reqId: o?.requestId }, "portone call");
  }
}

// ---- V2's wire shapes, as far as they are read ------------------------------

interface V2BillingKey {
  status?: string;
  customer?: { id?: string };
  methods?: { card?: { name?: string; number?: string; type?: string } }[];
  channels?: { pgProvider?: string; pgMerchantId?: string }[];
}

interface V2Payment {
  status: string;
  id: string;
  transactionId?: string;
  method?: { type?: string; card?: { name?: string } };
  channel?: { pgProvider?: string };
  billingKey?: string;
  amount: { total: number; cancelled?: number };
  currency: string;
  requestedAt?: string;
  paidAt?: string;
  failedAt?: string;
  cancelledAt?: string;
  receiptUrl?: string;
  failure?: { reason?: string; pgMessage?: string };
  cancellations?: { totalAmount: number; reason?: string; cancelledAt?: string }[];
}

interface V2Schedule {
  id: string;
  paymentId: string;
  status: string;
  timeToPay: string;
  orderName: string;
  totalAmount: number;
  taxFreeAmount?: number;
  vatAmount?: number;
  currency: string;
  customer?: { id?: string; name?: string; email?: string; phoneNumber?: string };
  customData?: string;
}

function unix(iso: string | undefined): number | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? Math.floor(t / 1000) : undefined;
}

function status(p: V2Payment): ProviderPaymentStatus {
  switch (p.status) {
    case "PAID":
    case "PARTIAL_CANCELLED":
      return "paid";
    case "CANCELLED":
      return "cancelled";
    case "VIRTUAL_ACCOUNT_ISSUED":
      return "ready";
    case "FAILED":
      return "failed";
    default:
      // READY and PAY_PENDING: nothing was paid (yet).
      throw new IamportNotFoundError(`payment ${p.id} is ${p.status}: not attempted yet`, "GET /payments/{paymentId}", "PortOne");
  }
}

function payment(p: V2Payment): ProviderPayment {
  const cancellations = p.cancellations ?? [];
  return {
    imp_uid: p.id,
    merchant_uid: p.id,
    amount: p.amount.total,
    cancel_amount: p.amount.cancelled ?? 0,
    currency: p.currency,
    status: status(p),
    pay_method: p.method?.type === "PaymentMethodCard" ? "card" : p.method?.type,
    pg_provider: p.channel?.pgProvider,
    card_name: p.method?.card?.name ?? null,
    fail_reason: p.failure ? p.failure.pgMessage || p.failure.reason || null : null,
    cancel_reason: cancellations.length > 0 ? cancellations[cancellations.length - 1].reason ?? null : null,
    started_at: unix(p.requestedAt),
    paid_at: unix(p.paidAt),
    failed_at: unix(p.failedAt),
    cancelled_at: unix(p.cancelledAt),
    receipt_url: p.receiptUrl ?? null,
    cancel_history: cancellations.map((c) => ({ amount: c.totalAmount, cancelled_at: unix(c.cancelledAt) ?? 0 })),
  };
}

function schedule(s: V2Schedule): ProviderSchedule {
  const executed = s.status === "SUCCEEDED" || s.status === "FAILED";
  return {
    merchant_uid: s.paymentId,
    imp_uid: executed ? s.paymentId : null,
    schedule_at: unix(s.timeToPay) ?? 0,
    schedule_status: s.status === "SCHEDULED" ? "scheduled" : s.status === "REVOKED" ? "revoked" : executed ? "executed" : "scheduled",
    amount: s.totalAmount,
  };
}

function customer(id?: string, name?: string, email?: string, phone?: string) {
  return {
    ...(id ? { id } : {}),
    ...(name ? { name: { full: name } } : {}),
    ...(email ? { email } : {}),
    ...(phone ? { phoneNumber: phone } : {}),
  };
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

