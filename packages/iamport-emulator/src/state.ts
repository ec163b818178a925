import { declineReason, inspectCard, TEST_CARDS, type CardInput, type CardProfile } from "./cards";
import type { Clock } from "./clock";
import { badRequest, notFound, refused } from "./errors";
import { MinHeap } from "./heap";
import { apiImpUid, browserImpUid, pgTid, randomDigits, randomString } from "./ids";
import type {
  BuyerInfo,
  Customer,
  CustomerInfo,
  CustomerUidUsage,
  Payment,
  PaymentStatus,
  Prepare,
  Schedule,
  ScheduleStatus,
} from "./model";

/*
 * The Iamport domain: billing keys, payments, schedules and prepared amounts,
 * with the indexes that keep every operation O(1) or O(log n) so that tens of
 * thousands of records stay fast. All mutations are synchronous, so a schedule
 * popped from the due index runs exactly once even when the background ticker
 * and a clock advance race: JavaScript never interleaves them.
 */

export const DEFAULT_PG = { provider: "nice", id: "iamport00m" } as const;

const UNKNOWN_CUSTOMER = "등록된 고객정보가 없습니다.";
const SCHEDULE_PAGE_SIZE = 20;

export interface IssueInput extends CardInput, CustomerInfo {
  pg: string | null;
  customer_id: string | null;
}

export interface ChargeInput extends BuyerInfo {
  merchant_uid: string;
  amount: number;
  name: string | null;
  currency: string;
  custom_data: string | null;
  notice_url: string | null;
  card_quota: number;
  tax_free?: number | null;
  vat_amount?: number | null;
}

export interface ScheduleInput extends BuyerInfo {
  merchant_uid: string;
  schedule_at: number;
  amount: number;
  name: string;
  currency: string;
  custom_data: string | null;
  notice_url: string | null;
  tax_free: number | null;
  vat_amount: number | null;
  card_quota: number;
}

export interface CancelInput {
  imp_uid: string | null;
  merchant_uid: string | null;
  amount: number | null;
  checksum: number | null;
  reason: string | null;
  tax_free?: number | null;
  vat_amount?: number | null;
}

export interface CheckoutInput extends BuyerInfo {
  merchant_uid: string;
  amount: number;
  pay_method: "card" | "vbank";
  customer_uid: string | null;
  name: string | null;
  currency: string;
  notice_url: string | null;
  ignore_prepare: boolean;
  card_number: string | null;
  pg: string | null;
  custom_data: string | null;
}

export interface VbankInput extends BuyerInfo {
  merchant_uid: string;
  amount: number;
  vbank_code: string;
  vbank_due: number;
  vbank_holder: string | null;
  name: string | null;
  notice_url: string | null;
  custom_data: string | null;
}

/** The banks `POST /vbanks` issues accounts at (금융결제원 codes). */
export const VBANK_BANKS: ReadonlyMap<string, string> = new Map([
  ["003", "IBK기업은행"],
  ["004", "KB국민은행"],
  ["011", "NH농협은행"],
  ["020", "우리은행"],
  ["081", "하나은행"],
  ["088", "신한은행"],
]);

export interface ExecutedSchedule {
  schedule: Schedule;
  payment: Payment | null;
}

export interface Page<T> {
  total: number;
  previous: number;
  next: number;
  list: T[];
}

/**
 * A billing key's card as the state file keeps it: what Iamport shows about
 * it and the test-card behaviour. Never the number (nor the fingerprint, which
 * with the masked digits gives the number back), expiry, birth or password.
 */
export type SavedCard = Pick<CardProfile, "masked" | "behaviour" | "cardCode" | "cardName" | "cardType">;

/** Everything the emulator holds as Iamport would, for the state file. */
export interface StateSnapshot {
  seq: number;
  customers: (Omit<Customer, "card"> & { card: SavedCard })[];
  payments: Payment[];
  schedules: Schedule[];
  prepares: Prepare[];
}

interface DueEntry {
  at: number;
  seq: number;
  schedule: Schedule;
}

function parsePg(pg: string | null): { provider: string; id: string } {
  if (!pg) return { ...DEFAULT_PG };
  const dot = pg.indexOf(".");
  if (dot < 0) return { provider: pg, id: DEFAULT_PG.id };
  return { provider: pg.slice(0, dot) || DEFAULT_PG.provider, id: pg.slice(dot + 1) || DEFAULT_PG.id };
}

export function paginate<T>(items: T[], page: number, size: number): Page<T> {
  const start = (page - 1) * size;
  return {
    total: items.length,
    previous: page > 1 ? page - 1 : 0,
    next: start + size < items.length ? page + 1 : 0,
    list: items.slice(start, start + size),
  };
}

/** `sorting` of Iamport's payment listings; a leading `-` means newest first. */
export const PAYMENT_SORTINGS = ["-started", "started", "-paid", "paid", "-updated", "updated"] as const;
export type PaymentSorting = (typeof PAYMENT_SORTINGS)[number];

function sortKey(p: Payment, sorting: PaymentSorting): number {
  switch (sorting.replace(/^-/, "")) {
    case "paid":
      return p.paid_at;
    case "updated":
      return Math.max(p.started_at, p.paid_at, p.failed_at, p.cancelled_at);
    default:
      return p.started_at;
  }
}

/** Sorts payments given in the order they were made; ties keep that order (newest first when descending). */
function sortPayments(list: Payment[], sorting: PaymentSorting): Payment[] {
  const descending = sorting.startsWith("-");
  const ordered = descending ? [...list].reverse() : [...list];
  return ordered.sort((a, b) => (descending ? sortKey(b, sorting) - sortKey(a, sorting) : sortKey(a, sorting) - sortKey(b, sorting)));
}

/** The time a payment is searched by in `/payments/status/{status}`: that of its current status. */
function statusTime(p: Payment): number {
  switch (p.status) {
    case "paid":
      return p.paid_at;
    case "failed":
      return p.failed_at;
    case "cancelled":
      return p.cancelled_at;
    default:
      return p.started_at;
  }
}

export interface BalanceAmounts {
  tax_free: number;
  supply: number;
  vat: number;
  service: number;
}

export interface PaymentBalance {
  amount: number;
  cash_receipt: BalanceAmounts;
  primary: BalanceAmounts;
  secondary: BalanceAmounts;
  discount: BalanceAmounts;
  histories: (Omit<PaymentBalance, "amount" | "histories"> & { created: number })[];
}

const ZERO_BALANCE: BalanceAmounts = { tax_free: 0, supply: 0, vat: 0, service: 0 };

/** An amount split as a taxed card payment: VAT is 1/11 of it, rounded to the won (negative for refunds). */
function splitAmount(amount: number): BalanceAmounts {
  const vat = Math.sign(amount) * Math.round(Math.abs(amount) / 11);
  return { tax_free: 0, supply: amount - vat, vat, service: 0 };
}

export class IamportState {
  readonly customers = new Map<string, Customer>();
  private readonly payments = new Map<string, Payment>();
  private readonly paymentsByMerchant = new Map<string, Payment[]>();
  /** The current schedule of each merchant_uid (a revoked or failed one may be replaced). */
  private readonly schedulesByMerchant = new Map<string, Schedule>();
  private readonly schedulesByCustomer = new Map<string, Schedule[]>();
  private readonly allSchedules: Schedule[] = [];
  private readonly prepares = new Map<string, Prepare>();
  /** Charges per card fingerprint, for cards charged once without a billing key. */
  private readonly onetimeCharges = new Map<string, number>();
  // Entries go stale when a schedule is revoked or moved; they are skipped when popped.
  private readonly due = new MinHeap<DueEntry>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq));
  private seq = 0;

  constructor(
    private readonly clock: Clock,
    private readonly receiptUrl: (impUid: string) => string,
  ) {}

  reset(): void {
    this.customers.clear();
    this.payments.clear();
    this.paymentsByMerchant.clear();
    this.schedulesByMerchant.clear();
    this.schedulesByCustomer.clear();
    this.allSchedules.length = 0;
    this.prepares.clear();
    this.onetimeCharges.clear();
    this.due.clear();
  }

  /** The records, for the state file; serialize before the next mutation (they are shared). */
  snapshot(): StateSnapshot {
    return {
      seq: this.seq,
      customers: [...this.customers.values()].map(({ card, ...c }) => ({
        ...c,
        card: { masked: card.masked, behaviour: card.behaviour, cardCode: card.cardCode, cardName: card.cardName, cardType: card.cardType },
      })),
      payments: [...this.payments.values()],
      schedules: [...this.allSchedules],
      prepares: [...this.prepares.values()],
    };
  }

  /** Replaces everything with a snapshot; pending schedules run again when their time comes. */
  restore(snapshot: StateSnapshot): void {
    this.reset();
    this.seq = Math.max(this.seq, snapshot.seq);
    for (const c of snapshot.customers) {
      // The expiry was not saved, so a restored key does not expire; the fingerprint only counts keyless charges.
      this.customers.set(c.customer_uid, { ...c, card: { ...c.card, validUntil: Number.POSITIVE_INFINITY, fingerprint: "" } });
    }
    for (const p of [...snapshot.payments].sort((a, b) => a.seq - b.seq)) this.addPayment(p);
    for (const s of [...snapshot.schedules].sort((a, b) => a.seq - b.seq)) this.addSchedule(s);
    for (const p of snapshot.prepares) this.prepares.set(p.merchant_uid, p);
  }

  counts() {
    return {
      customers: this.customers.size,
      payments: this.payments.size,
      schedules: this.allSchedules.length,
      pending_schedules: this.due.size,
    };
  }

  // ---- billing keys -------------------------------------------------------

  /** Issues (or replaces) the billing key behind `customerUid`. */
  issueBillingKey(customerUid: string, input: IssueInput): Customer {
    const now = this.clock.now();
    const check = inspectCard(input, now);
    if (!check.ok) throw refused(check.message, -1);
    const pg = parsePg(input.pg);
    const existing = this.customers.get(customerUid);
    const customer: Customer = {
      customer_uid: customerUid,
      customer_id: input.customer_id ?? existing?.customer_id ?? null,
      pg_provider: pg.provider,
      pg_id: pg.id,
      card: check.card,
      customer_name: input.customer_name,
      customer_tel: input.customer_tel,
      customer_email: input.customer_email,
      customer_addr: input.customer_addr,
      customer_postcode: input.customer_postcode,
      inserted: existing?.inserted ?? now,
      updated: now,
      charges: 0, // a new card starts a new history
    };
    this.customers.set(customerUid, customer);
    return customer;
  }

  getCustomer(customerUid: string): Customer {
    const c = this.customers.get(customerUid);
    if (!c) throw notFound(UNKNOWN_CUSTOMER);
    return c;
  }

  /**
   * Deletes the billing key. Like Iamport (whose docs tell merchants to check
   * for schedules first), pending schedules are not revoked: they fail when run.
   */
  deleteCustomer(customerUid: string): Customer {
    const c = this.getCustomer(customerUid);
    this.customers.delete(customerUid);
    return c;
  }

  // ---- payments -----------------------------------------------------------

  getPayment(impUid: string): Payment | undefined {
    return this.payments.get(impUid);
  }

  /** The latest payment of an order, optionally of one status. */
  findPayment(merchantUid: string, status?: PaymentStatus): Payment | undefined {
    const list = this.paymentsByMerchant.get(merchantUid);
    if (!list) return undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      if (!status || list[i].status === status) return list[i];
    }
    return undefined;
  }

  /** Every payment of an order (`/payments/findAll`), sorted, optionally of one status. */
  findPayments(merchantUid: string, status: PaymentStatus | null, sorting: PaymentSorting): Payment[] {
    const list = (this.paymentsByMerchant.get(merchantUid) ?? []).filter((p) => !status || p.status === status);
    return sortPayments(list, sorting);
  }

  /** `/payments/status/{status}`: payments whose current status' time is within [from, to]. */
  listPaymentsByStatus(q: { status: PaymentStatus | null; from: number; to: number; sorting: PaymentSorting; page: number; limit: number }): Page<Payment> {
    const list: Payment[] = [];
    for (const p of this.payments.values()) {
      if (q.status && p.status !== q.status) continue;
      const at = statusTime(p);
      if (at >= q.from && at <= q.to) list.push(p);
    }
    return paginate(sortPayments(list, q.sorting), q.page, q.limit);
  }

  /** `/subscribe/customers/{customer_uid}/payments`: the key's payments, newest first, 20 a page. */
  listCustomerPayments(customerUid: string, page: number): Page<Payment> {
    const list: Payment[] = [];
    for (const p of this.payments.values()) if (p.customer_uid === customerUid) list.push(p);
    if (list.length === 0 && !this.customers.has(customerUid)) throw notFound(UNKNOWN_CUSTOMER);
    return paginate(sortPayments(list, "-started"), page, SCHEDULE_PAGE_SIZE);
  }

  /**
   * `/payments/{imp_uid}/balance`: what is left of a payment, as a taxed card
   * payment (VAT 1/11, no tax-free part, points or discounts); each history
   * entry is one event's amounts (the payment, then each cancellation, negative).
   */
  paymentBalance(impUid: string): PaymentBalance {
    const p = this.payments.get(impUid);
    if (!p) throw notFound("존재하지 않는 결제정보입니다.");
    const events: { amount: number; at: number }[] = [];
    if (p.paid_at > 0) events.push({ amount: p.amount, at: p.paid_at });
    for (const c of p.cancel_history) events.push({ amount: -c.amount, at: c.cancelled_at });
    const net = events.reduce((sum, e) => sum + e.amount, 0);
    return {
      amount: p.amount,
      cash_receipt: { ...ZERO_BALANCE },
      primary: splitAmount(net),
      secondary: { ...ZERO_BALANCE },
      discount: { ...ZERO_BALANCE },
      histories: events.map((e) => ({
        cash_receipt: { ...ZERO_BALANCE },
        primary: splitAmount(e.amount),
        secondary: { ...ZERO_BALANCE },
        discount: { ...ZERO_BALANCE },
        created: e.at,
      })),
    };
  }

  private isPaidOrder(merchantUid: string): boolean {
    return this.paymentsByMerchant.get(merchantUid)?.some((p) => p.paid_at > 0) ?? false;
  }

  /** An order that was paid (even if refunded since) cannot be charged again; a failed one can. */
  private assertNotPaid(merchantUid: string): void {
    if (this.isPaidOrder(merchantUid)) {
      throw refused(`이미 결제가 완료된 주문번호(merchant_uid: ${merchantUid})입니다.`);
    }
  }

  /** `POST /subscribe/payments/again`: charges a stored billing key. */
  chargeAgain(customerUid: string, input: ChargeInput): Payment {
    const customer = this.customers.get(customerUid);
    if (!customer) throw refused(UNKNOWN_CUSTOMER);
    this.assertNotPaid(input.merchant_uid);
    const now = this.clock.now();
    const p = this.newPayment(this.uniqueId(apiImpUid), input, now, {
      channel: "api",
      pay_method: "card",
      pg_provider: customer.pg_provider,
      pg_id: customer.pg_id,
      customer_uid: customerUid,
      customer_uid_usage: "payment",
    });
    customer.charges += 1;
    this.applyCardCharge(p, customer.card, customer.charges, now);
    return this.addPayment(p);
  }

  /** `POST /subscribe/payments/onetime`: card data and a charge; with a customer_uid it also stores the key. */
  chargeOnetime(card: CardInput, pg: string | null, customerUid: string | null, input: ChargeInput): Payment {
    this.assertNotPaid(input.merchant_uid);
    const now = this.clock.now();
    let profile: CardProfile;
    let chargeNumber: number;
    let pgInfo = parsePg(pg);
    if (customerUid) {
      // Iamport stores buyer_* as the customer's details when it saves the key.
      const customer = this.issueBillingKey(customerUid, {
        ...card,
        pg,
        customer_id: null,
        customer_name: input.buyer_name,
        customer_tel: input.buyer_tel,
        customer_email: input.buyer_email,
        customer_addr: input.buyer_addr,
        customer_postcode: input.buyer_postcode,
      });
      customer.charges += 1;
      profile = customer.card;
      chargeNumber = customer.charges;
      pgInfo = { provider: customer.pg_provider, id: customer.pg_id };
    } else {
      const check = inspectCard(card, now);
      if (!check.ok) throw refused(check.message, -1);
      profile = check.card;
      chargeNumber = (this.onetimeCharges.get(profile.fingerprint) ?? 0) + 1;
      this.onetimeCharges.set(profile.fingerprint, chargeNumber);
    }
    const p = this.newPayment(this.uniqueId(apiImpUid), input, now, {
      channel: "api",
      pay_method: "card",
      pg_provider: pgInfo.provider,
      pg_id: pgInfo.id,
      customer_uid: customerUid,
      customer_uid_usage: customerUid ? "issue" : null,
    });
    this.applyCardCharge(p, profile, chargeNumber, now);
    return this.addPayment(p);
  }

  /** `POST /payments/cancel`: a partial or full refund. */
  cancel(input: CancelInput): Payment {
    let p: Payment | undefined;
    if (input.imp_uid) p = this.payments.get(input.imp_uid);
    else if (input.merchant_uid) p = this.findPayment(input.merchant_uid, "paid") ?? this.findPayment(input.merchant_uid);
    if (!p) throw refused("취소할 결제건이 존재하지 않습니다.");
    const now = this.clock.now();
    const reason = input.reason ?? "";

    if (p.status === "cancelled") throw refused("이미 전액취소된 주문입니다.");
    if (p.status === "ready" && p.pay_method === "vbank") {
      // An unpaid virtual account can be withdrawn: nothing to refund.
      if (input.checksum !== null && input.checksum !== 0) throw refused("[취소실패] 취소가능잔액 검증에 실패하였습니다.");
      p.status = "cancelled";
      p.cancelled_at = now;
      p.cancel_reason = reason;
      return p;
    }
    if (p.status !== "paid") throw refused("결제가 완료되지 않은 건은 취소할 수 없습니다.");

    const balance = p.amount - p.cancel_amount;
    if (input.checksum !== null && input.checksum !== balance) {
      throw refused(`[취소실패] 취소가능잔액 검증에 실패하였습니다. (취소가능잔액: ${balance}, checksum: ${input.checksum})`);
    }
    const amount = input.amount && input.amount > 0 ? input.amount : balance;
    if (amount > balance) {
      throw refused(`[취소실패] 취소요청금액(${amount})이 취소가능잔액(${balance})보다 큽니다.`);
    }
    const taxFree = input.tax_free ?? 0;
    const taxFreeLeft = (p.tax_free ?? 0) - p.cancel_history.reduce((sum, c) => sum + (c.tax_free ?? 0), 0);
    if (taxFree > amount || taxFree > taxFreeLeft) {
      throw refused(`[취소실패] 취소 면세금액(${taxFree})이 취소가능 면세금액(${Math.min(amount, taxFreeLeft)})보다 큽니다.`);
    }
    const cancellationId = randomString(20);
    p.cancel_history.push({
      tax_free: taxFree,
      vat_amount: input.vat_amount ?? null,
      pg_tid: pgTid(),
      amount,
      cancelled_at: now,
      reason,
      cancellation_id: cancellationId,
      receipt_url: `${this.receiptUrl(p.imp_uid)}?cancellation_id=${cancellationId}`,
    });
    p.cancel_amount += amount;
    p.cancel_reason = reason;
    // Iamport sets cancelled_at at a partial cancel too: the time of the latest cancellation,
    // which is also that entry's time in cancel_history. The status stays paid until nothing is left.
    p.cancelled_at = now;
    if (p.cancel_amount >= p.amount) p.status = "cancelled";
    return p;
  }

  // ---- prepared amounts ---------------------------------------------------

  prepare(merchantUid: string, amount: number, currency: string | null): Prepare {
    if (this.prepares.has(merchantUid)) throw refused(`이미 사전등록된 주문번호(merchant_uid: ${merchantUid})입니다.`);
    const p: Prepare = { merchant_uid: merchantUid, amount, currency };
    this.prepares.set(merchantUid, p);
    return p;
  }

  updatePrepare(merchantUid: string, amount: number, currency: string | null): Prepare {
    const p = this.getPrepare(merchantUid);
    p.amount = amount;
    p.currency = currency;
    return p;
  }

  getPrepare(merchantUid: string): Prepare {
    const p = this.prepares.get(merchantUid);
    if (!p) throw notFound("사전등록된 결제정보가 존재하지 않습니다.");
    return p;
  }

  // ---- schedules ----------------------------------------------------------

  getSchedule(merchantUid: string): Schedule {
    const s = this.schedulesByMerchant.get(merchantUid);
    if (!s) throw notFound("결제예약 건이 존재하지 않습니다.");
    return s;
  }

  /**
   * `POST /subscribe/payments/schedule`. All or nothing: one bad item refuses the
   * request, so a client never has to guess which schedules were registered.
   * With card data and an unknown customer_uid, the key is issued first (spec).
   */
  schedule(customerUid: string, items: ScheduleInput[], card: IssueInput | null): Schedule[] {
    const now = this.clock.now();
    const seen = new Set<string>();
    for (const item of items) {
      if (item.schedule_at < now) {
        throw badRequest(`예약시각(schedule_at: ${item.schedule_at})이 현재시각(${now})보다 과거입니다. (merchant_uid: ${item.merchant_uid})`);
      }
      if (seen.has(item.merchant_uid)) throw refused(`요청에 중복된 merchant_uid가 있습니다. (merchant_uid: ${item.merchant_uid})`);
      seen.add(item.merchant_uid);
      const existing = this.schedulesByMerchant.get(item.merchant_uid);
      if (existing && !this.isReplaceable(existing)) {
        throw refused(`이미 결제예약된 merchant_uid 입니다. (merchant_uid: ${item.merchant_uid})`);
      }
      this.assertNotPaid(item.merchant_uid);
    }
    let customer = this.customers.get(customerUid);
    if (!customer) {
      if (!card) throw refused(UNKNOWN_CUSTOMER);
      customer = this.issueBillingKey(customerUid, card);
    }

    const created: Schedule[] = [];
    for (const item of items) {
      const s: Schedule = {
        seq: ++this.seq,
        customer_uid: customerUid,
        customer_id: customer.customer_id,
        merchant_uid: item.merchant_uid,
        schedule_at: item.schedule_at,
        executed_at: 0,
        revoked_at: 0,
        amount: item.amount,
        currency: item.currency,
        name: item.name,
        // Missing buyer_* fall back to the customer's details (spec).
        buyer_name: item.buyer_name ?? customer.customer_name,
        buyer_email: item.buyer_email ?? customer.customer_email,
        buyer_tel: item.buyer_tel ?? customer.customer_tel,
        buyer_addr: item.buyer_addr ?? customer.customer_addr,
        buyer_postcode: item.buyer_postcode ?? customer.customer_postcode,
        custom_data: item.custom_data,
        notice_url: item.notice_url,
        tax_free: item.tax_free,
        vat_amount: item.vat_amount,
        card_quota: item.card_quota,
        schedule_status: "scheduled",
        imp_uid: null,
        pg_provider: null,
        pg_id: null,
        failure_without_payment: null,
      };
      this.addSchedule(s);
      created.push(s);
    }
    return created;
  }

  /** Indexes a schedule; a later one of the same merchant_uid replaces the earlier as its current schedule. */
  private addSchedule(s: Schedule): void {
    this.schedulesByMerchant.set(s.merchant_uid, s);
    let list = this.schedulesByCustomer.get(s.customer_uid);
    if (!list) this.schedulesByCustomer.set(s.customer_uid, (list = []));
    list.push(s);
    this.allSchedules.push(s);
    if (s.schedule_status === "scheduled") this.due.push({ at: s.schedule_at, seq: s.seq, schedule: s });
  }

  private isReplaceable(s: Schedule): boolean {
    if (s.schedule_status === "revoked") return true;
    if (s.schedule_status === "scheduled") return false;
    const p = s.imp_uid ? this.payments.get(s.imp_uid) : undefined;
    return p ? p.status === "failed" : s.failure_without_payment !== null;
  }

  /** `POST /subscribe/payments/unschedule`: the listed schedules, or all of the customer's. */
  unschedule(customerUid: string | null, merchantUids: string[] | null): Schedule[] {
    let targets: Schedule[];
    if (customerUid !== null) {
      const list = this.schedulesByCustomer.get(customerUid) ?? [];
      if (list.length === 0 && !this.customers.has(customerUid)) throw refused(UNKNOWN_CUSTOMER);
      const wanted = merchantUids ? new Set(merchantUids) : null;
      targets = wanted ? list.filter((s) => wanted.has(s.merchant_uid)) : list;
    } else {
      targets = (merchantUids ?? []).flatMap((m) => this.schedulesByMerchant.get(m) ?? []);
    }
    const revocable = targets.filter((s) => s.schedule_status === "scheduled");
    if (revocable.length === 0) throw refused("취소할 결제예약 건이 존재하지 않습니다.");
    const now = this.clock.now();
    for (const s of revocable) {
      s.schedule_status = "revoked";
      s.revoked_at = now;
    }
    return revocable;
  }

  /** `PUT /subscribe/payments/schedule/{merchant_uid}`: moves a pending schedule. */
  reschedule(merchantUid: string, scheduleAt: number): Schedule {
    const s = this.getSchedule(merchantUid);
    if (s.schedule_status !== "scheduled") throw badRequest("이미 실행되었거나 취소된 결제예약입니다.");
    const now = this.clock.now();
    if (scheduleAt < now) throw badRequest(`예약시각(schedule_at: ${scheduleAt})이 현재시각(${now})보다 과거입니다.`);
    s.schedule_at = scheduleAt;
    this.due.push({ at: scheduleAt, seq: ++this.seq, schedule: s });
    return s;
  }

  /**
   * The schedule a failed or revoked run may be tried again for (reschedule,
   * retry): one still pending, or whose order was paid, is a 400.
   */
  private retryable(merchantUid: string): Schedule {
    const s = this.getSchedule(merchantUid);
    const failedRun =
      s.schedule_status === "executed" && (s.failure_without_payment !== null || (s.imp_uid !== null && this.payments.get(s.imp_uid)?.status === "failed"));
    if (!(failedRun || s.schedule_status === "revoked") || this.isPaidOrder(merchantUid)) {
      throw badRequest("아직 실행되지 않았거나 이미 승인된 결제예약입니다. (실패하거나 취소된 결제예약만 다시 시도할 수 있습니다.)");
    }
    if (!this.customers.has(s.customer_uid)) throw notFound(UNKNOWN_CUSTOMER);
    return s;
  }

  /** `POST /subscribe/payments/schedule/{merchant_uid}/reschedule`: a failed or revoked schedule runs again at `scheduleAt`. */
  rescheduleFailed(merchantUid: string, scheduleAt: number): Schedule {
    const s = this.retryable(merchantUid);
    const now = this.clock.now();
    if (scheduleAt < now) throw badRequest(`예약시각(schedule_at: ${scheduleAt})이 현재시각(${now})보다 과거입니다.`);
    Object.assign(s, { schedule_status: "scheduled", schedule_at: scheduleAt, executed_at: 0, revoked_at: 0, imp_uid: null, failure_without_payment: null });
    this.due.push({ at: scheduleAt, seq: ++this.seq, schedule: s });
    return s;
  }

  /** `POST /subscribe/payments/schedule/{merchant_uid}/retry`: a failed or revoked schedule is charged now. */
  retrySchedule(merchantUid: string): Payment {
    const s = this.retryable(merchantUid);
    s.revoked_at = 0;
    s.failure_without_payment = null;
    const { payment } = this.execute(s, this.clock.now());
    // retryable() refused an order already paid, so execute() made a payment.
    return payment!;
  }

  listCustomerSchedules(
    customerUid: string,
    q: { from: number; to: number; status: ScheduleStatus | null; page: number },
  ): Page<Schedule> {
    const list = (this.schedulesByCustomer.get(customerUid) ?? []).filter(
      (s) => s.schedule_at >= q.from && s.schedule_at < q.to && (!q.status || s.schedule_status === q.status),
    );
    // Newest schedule first, as Iamport lists them.
    list.sort((a, b) => b.schedule_at - a.schedule_at || b.seq - a.seq);
    return paginate(list, q.page, SCHEDULE_PAGE_SIZE);
  }

  listSchedules(q: {
    from: number;
    to: number;
    status: ScheduleStatus | null;
    page: number;
    limit: number;
    ascending: boolean;
  }): Page<Schedule> {
    const list = this.allSchedules.filter(
      (s) => s.schedule_at >= q.from && s.schedule_at < q.to && (!q.status || s.schedule_status === q.status),
    );
    const dir = q.ascending ? 1 : -1;
    list.sort((a, b) => dir * (a.schedule_at - b.schedule_at || a.seq - b.seq));
    return paginate(list, q.page, q.limit);
  }

  /** Runs, in schedule_at order, every pending schedule due at or before `now`. */
  runDue(now: number): ExecutedSchedule[] {
    const executed: ExecutedSchedule[] = [];
    for (let top = this.due.peek(); top && top.at <= now; top = this.due.peek()) {
      this.due.pop();
      const s = top.schedule;
      if (s.schedule_status !== "scheduled" || s.schedule_at !== top.at) continue; // stale entry
      executed.push(this.execute(s, now));
    }
    return executed;
  }

  private execute(s: Schedule, now: number): ExecutedSchedule {
    s.schedule_status = "executed";
    s.executed_at = now;
    if (this.isPaidOrder(s.merchant_uid)) {
      // The order was paid meanwhile (e.g. by /again): charging it again is impossible.
      s.failure_without_payment = `이미 결제가 완료된 주문번호(merchant_uid: ${s.merchant_uid})입니다.`;
      return { schedule: s, payment: null };
    }
    const customer = this.customers.get(s.customer_uid);
    const p = this.newPayment(this.uniqueId(apiImpUid), s, now, {
      channel: "api",
      pay_method: "card",
      pg_provider: customer?.pg_provider ?? DEFAULT_PG.provider,
      pg_id: customer?.pg_id ?? DEFAULT_PG.id,
      customer_uid: s.customer_uid,
      customer_uid_usage: "payment.scheduled",
    });
    if (customer) {
      customer.charges += 1;
      this.applyCardCharge(p, customer.card, customer.charges, now);
    } else {
      p.status = "failed";
      p.failed_at = now;
      p.fail_reason = `${UNKNOWN_CUSTOMER} (삭제된 빌링키: ${s.customer_uid})`;
    }
    s.imp_uid = p.imp_uid;
    s.pg_provider = p.pg_provider;
    s.pg_id = p.pg_id;
    this.addPayment(p);
    return { schedule: s, payment: p };
  }

  // ---- browser payments (control API) --------------------------------------

  /** A payment made in the browser window (IMP.request_pay). */
  checkout(input: CheckoutInput): Payment {
    this.assertNotPaid(input.merchant_uid);
    const now = this.clock.now();
    const pg = parsePg(input.pg);
    const p = this.newPayment(this.uniqueId(browserImpUid), input, now, {
      channel: "pc",
      pay_method: input.pay_method,
      pg_provider: pg.provider,
      pg_id: pg.id,
      customer_uid: input.customer_uid,
      customer_uid_usage: input.customer_uid ? "issue" : null,
    });
    p.user_agent = "Mozilla/5.0 (Iamport emulator checkout)";
    this.addPayment(p);

    const prepared = this.prepares.get(input.merchant_uid);
    if (prepared && prepared.amount !== input.amount && !input.ignore_prepare) {
      // Iamport blocks the payment window when the amount differs from the prepared one.
      p.status = "failed";
      p.failed_at = now;
      p.fail_reason = `[결제요청 차단] 사전등록된 결제금액(${prepared.amount})과 요청금액(${input.amount})이 일치하지 않습니다.`;
      return p;
    }

    if (input.pay_method === "vbank") {
      p.status = "ready";
      p.vbank_code = "004";
      p.vbank_name = "KB국민은행";
      p.vbank_num = randomDigits(14);
      p.vbank_holder = "(주)아임포트";
      p.vbank_issued_at = now;
      p.vbank_date = now + 3 * 24 * 3600;
      p.pg_tid = pgTid();
      return p;
    }

    const card = { card_number: input.card_number ?? TEST_CARDS.VALID, expiry: "2099-12" };
    let profile: CardProfile;
    let chargeNumber: number;
    if (input.customer_uid) {
      try {
        const customer = this.issueBillingKey(input.customer_uid, {
          ...card,
          pg: input.pg,
          customer_id: null,
          customer_name: input.buyer_name,
          customer_tel: input.buyer_tel,
          customer_email: input.buyer_email,
          customer_addr: input.buyer_addr,
          customer_postcode: input.buyer_postcode,
        });
        profile = customer.card;
        // Issuing a key with amount 0 is not a charge.
        if (input.amount > 0) customer.charges += 1;
        chargeNumber = customer.charges;
      } catch (e) {
        p.status = "failed";
        p.failed_at = now;
        p.fail_reason = (e as Error).message;
        return p;
      }
    } else {
      const check = inspectCard(card, now);
      if (!check.ok) {
        p.status = "failed";
        p.failed_at = now;
        p.fail_reason = check.message;
        return p;
      }
      profile = check.card;
      chargeNumber = (this.onetimeCharges.get(profile.fingerprint) ?? 0) + 1;
      this.onetimeCharges.set(profile.fingerprint, chargeNumber);
    }
    this.applyCardCharge(p, profile, input.amount > 0 ? chargeNumber : 1, now);
    return p;
  }

  /** The customer pays into a virtual account. */
  /** `POST /vbanks`: a virtual account issued by API, waiting for the deposit (`ready`). */
  issueVbank(input: VbankInput): Payment {
    this.assertNotPaid(input.merchant_uid);
    const bank = VBANK_BANKS.get(input.vbank_code);
    if (!bank) throw refused(`가상계좌 발급에 실패하였습니다. 지원하지 않는 은행코드입니다. (vbank_code: ${input.vbank_code})`);
    const now = this.clock.now();
    if (input.vbank_due <= now) throw refused(`가상계좌 입금기한(vbank_due: ${input.vbank_due})이 현재시각(${now})보다 과거입니다.`);
    const p = this.newPayment(this.uniqueId(apiImpUid), { ...input, currency: "KRW" }, now, {
      channel: "api",
      pay_method: "vbank",
      pg_provider: DEFAULT_PG.provider,
      pg_id: DEFAULT_PG.id,
      customer_uid: null,
      customer_uid_usage: null,
    });
    Object.assign(p, {
      status: "ready",
      vbank_code: input.vbank_code,
      vbank_name: bank,
      vbank_num: randomDigits(14),
      vbank_holder: input.vbank_holder ?? "(주)아임포트",
      vbank_issued_at: now,
      vbank_date: input.vbank_due,
      pg_tid: pgTid(),
    });
    return this.addPayment(p);
  }

  deposit(impUid: string): Payment {
    const p = this.payments.get(impUid);
    if (!p) throw notFound("존재하지 않는 결제정보입니다.");
    if (p.pay_method !== "vbank" || p.status !== "ready") {
      throw refused(`입금 대기 중인 가상계좌가 아닙니다. (status: ${p.status}, pay_method: ${p.pay_method})`);
    }
    const now = this.clock.now();
    if (p.vbank_date && p.vbank_date < now) throw refused("가상계좌 입금기한이 지났습니다.");
    p.status = "paid";
    p.paid_at = now;
    p.receipt_url = this.receiptUrl(p.imp_uid);
    return p;
  }

  // ---- helpers ------------------------------------------------------------

  private newPayment(
    impUid: string,
    input: BuyerInfo & {
      merchant_uid: string;
      amount: number;
      name: string | null;
      currency: string;
      custom_data: string | null;
      notice_url: string | null;
      card_quota?: number;
      tax_free?: number | null;
      vat_amount?: number | null;
    },
    now: number,
    how: {
      channel: Payment["channel"];
      pay_method: Payment["pay_method"];
      pg_provider: string;
      pg_id: string;
      customer_uid: string | null;
      customer_uid_usage: CustomerUidUsage | null;
    },
  ): Payment {
    return {
      seq: ++this.seq,
      imp_uid: impUid,
      merchant_uid: input.merchant_uid,
      ...how,
      pg_tid: null,
      apply_num: null,
      card_code: null,
      card_name: null,
      card_quota: input.card_quota ?? 0,
      card_number: null,
      card_type: null,
      vbank_code: null,
      vbank_name: null,
      vbank_num: null,
      vbank_holder: null,
      vbank_date: 0,
      vbank_issued_at: 0,
      name: input.name,
      amount: input.amount,
      cancel_amount: 0,
      tax_free: input.tax_free ?? 0,
      vat_amount: input.vat_amount ?? null,
      currency: input.currency,
      buyer_name: input.buyer_name,
      buyer_email: input.buyer_email,
      buyer_tel: input.buyer_tel,
      buyer_addr: input.buyer_addr,
      buyer_postcode: input.buyer_postcode,
      custom_data: input.custom_data,
      user_agent: null,
      status: "ready",
      started_at: now,
      paid_at: 0,
      failed_at: 0,
      cancelled_at: 0,
      fail_reason: null,
      cancel_reason: null,
      receipt_url: null,
      cancel_history: [],
      notice_url: input.notice_url,
    };
  }

  private applyCardCharge(p: Payment, card: CardProfile, chargeNumber: number, now: number): void {
    p.card_code = card.cardCode;
    p.card_name = card.cardName;
    p.card_number = card.masked;
    p.card_type = card.cardType;
    p.pg_tid = pgTid();
    const reason = declineReason(card, chargeNumber, now);
    if (reason) {
      p.status = "failed";
      p.failed_at = now;
      p.fail_reason = reason;
    } else {
      p.status = "paid";
      p.paid_at = now;
      p.apply_num = randomDigits(8);
      p.receipt_url = this.receiptUrl(p.imp_uid);
    }
  }

  private uniqueId(generate: () => string): string {
    for (;;) {
      const id = generate();
      if (!this.payments.has(id)) return id;
    }
  }

  private addPayment(p: Payment): Payment {
    this.payments.set(p.imp_uid, p);
    let list = this.paymentsByMerchant.get(p.merchant_uid);
    if (!list) this.paymentsByMerchant.set(p.merchant_uid, (list = []));
    list.push(p);
    return p;
  }
}
