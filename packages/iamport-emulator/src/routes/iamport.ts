import type { CardInput } from "../cards";
import type { Clock } from "../clock";
import { badRequest, IamportError, notFound, unauthorized } from "../errors";
import {
  customerToWire,
  paymentToWire,
  prepareToWire,
  scheduleToWire,
  type BuyerInfo,
  type Payment,
  type PaymentStatus,
  type Schedule,
  type ScheduleStatus,
} from "../model";
import { Params } from "../params";
import { compileTemplate, type CompiledTemplate, type HttpMethod } from "../router";
import { paginate, PAYMENT_SORTINGS, type ChargeInput, type IamportState, type IssueInput, type Page, type PaymentSorting, type ScheduleInput } from "../state";
import type { TokenIssuer } from "../tokens";
import type { WebhookJob } from "../webhooks";

/*
 * The Iamport V1 routes this emulator implements, keyed by the spec's own
 * path templates. Handlers are synchronous and pure over the state: they
 * parse, call one state operation and shape the envelope.
 */

export interface Envelope {
  code: number;
  message: string | null;
  response: unknown;
}

export interface ApiResult {
  status: number;
  body: Envelope;
}

export interface CallContext {
  params: Record<string, string>;
  query: Params;
  body: Params;
}

export interface IamportRoute {
  method: HttpMethod;
  templates: CompiledTemplate[];
  /** False only for getToken. */
  auth: boolean;
  handle(ctx: CallContext): ApiResult;
}

export interface IamportDeps {
  state: IamportState;
  tokens: TokenIssuer;
  clock: Clock;
  credentials: { apiKey: string; apiSecret: string };
  /** Fire-and-forget webhooks caused by API calls. */
  sendWebhooks(jobs: WebhookJob[]): void;
}

export const ok = (response: unknown): ApiResult => ({ status: 200, body: { code: 0, message: null, response } });

export const errorResult = (e: IamportError): ApiResult => ({
  status: e.httpStatus,
  body: { code: e.code, message: e.message, response: null },
});

const PAYMENT_STATUSES: readonly PaymentStatus[] = ["ready", "paid", "failed", "cancelled"];
const SCHEDULE_STATUSES: readonly ScheduleStatus[] = ["scheduled", "executed", "revoked"];
// A schedule_at this large is almost surely milliseconds, a classic bug worth catching.
const MAX_UNIX_SECONDS = 99_999_999_999;

export function readBuyer(b: Params): BuyerInfo {
  return {
    buyer_name: b.optStr("buyer_name"),
    buyer_email: b.optStr("buyer_email"),
    buyer_tel: b.optStr("buyer_tel"),
    buyer_addr: b.optStr("buyer_addr"),
    buyer_postcode: b.optStr("buyer_postcode"),
  };
}

function readCharge(b: Params, nameRequired: boolean): ChargeInput {
  const amount = b.num("amount", { positive: true });
  return {
    merchant_uid: b.str("merchant_uid", 40),
    amount,
    tax_free: readPart(b, "tax_free", amount),
    vat_amount: readPart(b, "vat_amount", amount),
    name: nameRequired ? b.str("name") : b.optStr("name"),
    currency: b.optStr("currency") ?? "KRW",
    ...readBuyer(b),
    custom_data: b.customData(),
    notice_url: b.optStr("notice_url"),
    card_quota: b.optInt("card_quota", { min: 0 }) ?? 0,
  };
}

/** A part of `amount` (`tax_free`, `vat_amount`): Iamport refuses one larger than the amount. */
function readPart(b: Params, name: string, amount: number): number | null {
  const v = b.optNum(name, { min: 0 });
  if (v !== null && v > amount) throw badRequest(`${b.label(name)}(${v})이 결제금액(${amount})보다 큽니다.`);
  return v;
}

function readCard(b: Params): CardInput {
  return {
    card_number: b.str("card_number"),
    expiry: b.str("expiry"),
    birth: b.optStr("birth"),
    pwd_2digit: b.optStr("pwd_2digit"),
  };
}

function readIssue(b: Params): IssueInput {
  return {
    ...readCard(b),
    pg: b.optStr("pg", 80),
    customer_id: b.optStr("customer_id"),
    customer_name: b.optStr("customer_name"),
    customer_tel: b.optStr("customer_tel"),
    customer_email: b.optStr("customer_email"),
    customer_addr: b.optStr("customer_addr"),
    customer_postcode: b.optStr("customer_postcode"),
  };
}

function readUnixSeconds(b: Params, name: string): number {
  const at = b.int(name, { min: 0 });
  if (at > MAX_UNIX_SECONDS) throw badRequest(`${b.label(name)} 파라미터는 UNIX timestamp(초)여야 합니다. 밀리초를 보내지 않았는지 확인하세요.`);
  return at;
}

function readSchedule(raw: unknown, index: number): ScheduleInput {
  const s = Params.of(raw, `schedules[${index}].`);
  const amount = s.num("amount", { positive: true });
  return {
    merchant_uid: s.str("merchant_uid", 40),
    schedule_at: readUnixSeconds(s, "schedule_at"),
    amount,
    name: s.str("name"),
    currency: s.optStr("currency") ?? "KRW",
    ...readBuyer(s),
    custom_data: s.customData(),
    notice_url: s.optStr("notice_url"),
    tax_free: readPart(s, "tax_free", amount),
    vat_amount: readPart(s, "vat_amount", amount),
    card_quota: s.optInt("card_quota", { min: 0 }) ?? 0,
  };
}

const KST_OFFSET_SECONDS = 9 * 3600;

/** UNIX seconds three calendar months after `at`, Korean time (a day past the month's end rolls over). */
function threeMonthsAfter(at: number): number {
  const d = new Date((at + KST_OFFSET_SECONDS) * 1000);
  const later = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 3, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds());
  return later / 1000 - KST_OFFSET_SECONDS;
}

/**
 * The `from`..`to` of a schedule listing: Iamport lists schedules at most
 * three months at a time, so a longer window is refused (a caller scans a
 * year in windows, as it must against Iamport).
 */
function scheduleWindow(q: Params, fromName: string, toName: string): { from: number; to: number } {
  const from = q.int(fromName, { min: 0 });
  const to = q.int(toName, { min: 0 });
  if (to > threeMonthsAfter(from)) {
    throw badRequest(`결제예약 조회 기간(${fromName} ~ ${toName})은 최대 3개월까지 가능합니다.`);
  }
  return { from, to };
}

/** `/payments/status/{status}` searches at most 90 days, as Iamport does. */
const STATUS_SEARCH_MAX_SECONDS = 90 * 86_400;

/** A `{payment_status}` path segment; "all" (what Iamport's own clients send) or none means any status. */
function pathStatus(params: Record<string, string>): PaymentStatus | null {
  const raw = params.payment_status === "all" ? null : (params.payment_status ?? null);
  return enumValue(raw, PAYMENT_STATUSES, "payment_status");
}

function enumValue<T extends string>(value: string | null, allowed: readonly T[], name: string): T | null {
  if (value === null) return null;
  if (!(allowed as readonly string[]).includes(value)) throw badRequest(`${name} 파라미터는 ${allowed.join(", ")} 중 하나여야 합니다.`);
  return value as T;
}

/** At most this many ids in one multiple look-up (`/payments`, `/subscribe/customers`), as Iamport allows. */
const MAX_LOOKUP_IDS = 100;

/** A list query parameter as `name[]=a&name[]=b` (Iamport's form) or `name=a&name=b`. */
function idList(q: Params, name: string): string[] {
  return [...(q.optStrList(`${name}[]`) ?? []), ...(q.optStrList(name) ?? [])];
}

/**
 * The answer of a multiple look-up: 200 when every id was found, 207 with the
 * ones found when some were not, 404 when none was.
 */
function multiple<T>(ids: string[], found: T[], missing: string[]): ApiResult {
  if (found.length === 0) throw notFound(`조회된 정보가 없습니다. (${ids.join(", ")})`);
  if (missing.length === 0) return ok(found);
  return { status: 207, body: { code: 0, message: `일부 항목을 조회하지 못했습니다. (${missing.join(", ")})`, response: found } };
}

function readSorting(q: Params): PaymentSorting {
  return enumValue(q.optStr("sorting"), PAYMENT_SORTINGS, "sorting") ?? "-started";
}

function readLimit(q: Params): number {
  const limit = q.optInt("limit", { min: 1 }) ?? 20;
  if (limit > 1000) throw badRequest("limit 파라미터는 최대 1000입니다.");
  return limit;
}

export function webhookJob(p: Payment, source: WebhookJob["source"]): WebhookJob {
  const body: WebhookJob["body"] = { imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, status: p.status };
  // A cancelled payment's notice names its last cancellation, as Iamport's cancellation notices do.
  const last = p.cancel_history.at(-1);
  if (p.status === "cancelled" && last) body.cancellation_id = last.cancellation_id;
  return { noticeUrl: p.notice_url, body, source };
}

/**
 * The notice of one cancellation (`enable_webhook`): status `cancelled` even
 * when a partial cancel leaves the payment `paid`, since it reports the event;
 * the receiver re-queries the payment for its state.
 */
export function cancelWebhookJob(p: Payment): WebhookJob {
  const last = p.cancel_history.at(-1);
  const body: WebhookJob["body"] = { imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, status: "cancelled" };
  if (last) body.cancellation_id = last.cancellation_id;
  return { noticeUrl: p.notice_url, body, source: "cancel" };
}

export function createIamportRoutes(deps: IamportDeps): IamportRoute[] {
  const { state, tokens, clock, credentials } = deps;
  const scheduleWire = (s: Schedule) => scheduleToWire(s, (id) => state.getPayment(id));
  const schedulePage = (page: Page<Schedule>) => ({ ...page, list: page.list.map(scheduleWire) });
  const paymentPage = (page: Page<Payment>) => ({ ...page, list: page.list.map(paymentToWire) });
  const customerSchedules = ({ params, query }: CallContext) =>
    ok(
      schedulePage(
        state.listCustomerSchedules(params.customer_uid, {
          ...scheduleWindow(query, "from", "to"),
          status: enumValue(query.optStr("schedule-status"), SCHEDULE_STATUSES, "schedule-status"),
          page: query.optInt("page", { min: 1 }) ?? 1,
        }),
      ),
    );
  const paid = (p: Payment, source: WebhookJob["source"]) => {
    // Iamport notifies approved payments; an ordinary failed API charge sends nothing.
    if (p.status === "paid") deps.sendWebhooks([webhookJob(p, source)]);
    return ok(paymentToWire(p));
  };

  const route = (
    method: HttpMethod,
    templates: string | string[],
    handle: (ctx: CallContext) => ApiResult,
    auth = true,
  ): IamportRoute => ({
    method,
    templates: (Array.isArray(templates) ? templates : [templates]).map(compileTemplate),
    auth,
    handle,
  });

  return [
    route(
      "POST",
      "/users/getToken",
      ({ body }) => {
        const key = body.optStr("imp_key");
        const secret = body.optStr("imp_secret");
        if (key !== credentials.apiKey || secret !== credentials.apiSecret) {
          throw unauthorized("imp_key, imp_secret 인증에 실패하였습니다.");
        }
        return ok(tokens.issue(clock.now()));
      },
      false,
    ),

    // ---- billing keys
    route("GET", "/subscribe/customers", ({ query }) => {
      const ids = idList(query, "customer_uid");
      if (ids.length === 0) throw badRequest("customer_uid[] 파라미터가 누락되었습니다.");
      if (ids.length > MAX_LOOKUP_IDS) throw badRequest(`customer_uid[] 는 최대 ${MAX_LOOKUP_IDS}개까지 조회할 수 있습니다.`);
      const found = ids.flatMap((id) => (state.customers.has(id) ? [customerToWire(state.getCustomer(id))] : []));
      return multiple(ids, found, ids.filter((id) => !state.customers.has(id)));
    }),
    route("GET", "/subscribe/customers/{customer_uid}/payments", ({ params, query }) =>
      ok(paymentPage(state.listCustomerPayments(params.customer_uid, query.optInt("page", { min: 1 }) ?? 1))),
    ),
    // The same listing as /subscribe/payments/schedule/customers/{customer_uid}.
    route("GET", "/subscribe/customers/{customer_uid}/schedules", customerSchedules),
    route("GET", "/subscribe/customers/{customer_uid}", ({ params }) =>
      ok(customerToWire(state.getCustomer(params.customer_uid))),
    ),
    route("POST", "/subscribe/customers/{customer_uid}", ({ params, body }) => {
      if (params.customer_uid.length > 80) throw badRequest("customer_uid 파라미터는 최대 80자까지 허용됩니다.");
      return ok(customerToWire(state.issueBillingKey(params.customer_uid, readIssue(body))));
    }),
    route("DELETE", "/subscribe/customers/{customer_uid}", ({ params }) =>
      ok(customerToWire(state.deleteCustomer(params.customer_uid))),
    ),

    // ---- charges
    route("POST", "/subscribe/payments/again", ({ body }) => {
      const customerUid = body.str("customer_uid", 80);
      return paid(state.chargeAgain(customerUid, readCharge(body, true)), "payment");
    }),
    route("POST", "/subscribe/payments/onetime", ({ body }) => {
      const charge = readCharge(body, false);
      const card = readCard(body);
      return paid(state.chargeOnetime(card, body.optStr("pg", 80), body.optStr("customer_uid", 80), charge), "payment");
    }),

    // ---- schedules
    route("GET", "/subscribe/payments/schedule", ({ query }) => {
      const limit = query.optInt("limit", { min: 1 }) ?? 20;
      if (limit > 1000) throw badRequest("limit 파라미터는 최대 1000입니다.");
      const sorting = query.optStr("sorting");
      return ok(
        schedulePage(
          state.listSchedules({
            ...scheduleWindow(query, "schedule_from", "schedule_to"),
            status: enumValue(query.optStr("schedule_status"), SCHEDULE_STATUSES, "schedule_status"),
            page: query.optInt("page", { min: 1 }) ?? 1,
            limit,
            ascending: sorting === "scheduled",
          }),
        ),
      );
    }),
    route("POST", "/subscribe/payments/schedule", ({ body }) => {
      const customerUid = body.str("customer_uid", 80);
      const raw = body.optList("schedules");
      if (raw === null || raw.length === 0) throw badRequest("schedules 파라미터가 누락되었습니다.");
      const items = raw.map(readSchedule);
      const card = body.has("card_number") ? readIssue(body) : null;
      return ok(state.schedule(customerUid, items, card).map(scheduleWire));
    }),
    route("POST", "/subscribe/payments/unschedule", ({ body }) => {
      const customerUid = body.optStr("customer_uid");
      const merchantUids = body.optStrList("merchant_uid");
      if (customerUid === null && (merchantUids === null || merchantUids.length === 0)) {
        throw badRequest("customer_uid 또는 merchant_uid 파라미터가 필요합니다.");
      }
      return ok(state.unschedule(customerUid, merchantUids).map(scheduleWire));
    }),
    route("GET", "/subscribe/payments/schedule/{merchant_uid}", ({ params }) =>
      ok(scheduleWire(state.getSchedule(params.merchant_uid))),
    ),
    route("PUT", "/subscribe/payments/schedule/{merchant_uid}", ({ params, body }) =>
      ok(scheduleWire(state.reschedule(params.merchant_uid, readUnixSeconds(body, "schedule_at")))),
    ),
    route("POST", "/subscribe/payments/schedule/{merchant_uid}/reschedule", ({ params, body }) =>
      ok(scheduleWire(state.rescheduleFailed(params.merchant_uid, readUnixSeconds(body, "schedule_at")))),
    ),
    route("POST", "/subscribe/payments/schedule/{merchant_uid}/retry", ({ params }) => {
      // A retried schedule notifies like a scheduled run, paid or failed.
      const p = state.retrySchedule(params.merchant_uid);
      deps.sendWebhooks([webhookJob(p, "schedule")]);
      return ok(paymentToWire(p));
    }),
    route("GET", "/subscribe/payments/schedule/customers/{customer_uid}", customerSchedules),

    // ---- payments (static paths before /payments/{imp_uid})
    route("POST", "/payments/cancel", ({ body }) => {
      const impUid = body.optStr("imp_uid");
      const merchantUid = body.optStr("merchant_uid");
      if (impUid === null && merchantUid === null) throw badRequest("imp_uid 또는 merchant_uid 파라미터가 필요합니다.");
      const enableWebhook = body.optBool("enable_webhook") === true;
      const p = state.cancel({
        imp_uid: impUid,
        merchant_uid: merchantUid,
        amount: body.optNum("amount", { min: 0 }),
        checksum: body.optNum("checksum", { min: 0 }),
        reason: body.optStr("reason"),
        tax_free: body.optNum("tax_free", { min: 0 }),
        vat_amount: body.optNum("vat_amount", { min: 0 }),
      });
      // API cancels send no webhook unless asked (Iamport's default); the console always sends one.
      if (enableWebhook) deps.sendWebhooks([cancelWebhookJob(p)]);
      return ok(paymentToWire(p));
    }),
    route("POST", "/payments/prepare", ({ body }) =>
      ok(prepareToWire(state.prepare(body.str("merchant_uid", 40), body.num("amount", { min: 0 }), body.optStr("currency")))),
    ),
    route("PUT", "/payments/prepare", ({ body }) =>
      ok(prepareToWire(state.updatePrepare(body.str("merchant_uid", 40), body.num("amount", { min: 0 }), body.optStr("currency")))),
    ),
    route("GET", "/payments/prepare/{merchant_uid}", ({ params }) => ok(prepareToWire(state.getPrepare(params.merchant_uid)))),
    route("GET", ["/payments/find/{merchant_uid}", "/payments/find/{merchant_uid}/{payment_status}"], ({ params, query }) => {
      const [p] = state.findPayments(params.merchant_uid, pathStatus(params), readSorting(query));
      if (!p) throw notFound("존재하지 않는 결제정보입니다.");
      return ok(paymentToWire(p));
    }),
    route("GET", ["/payments/findAll/{merchant_uid}", "/payments/findAll/{merchant_uid}/{payment_status}"], ({ params, query }) => {
      const list = state.findPayments(params.merchant_uid, pathStatus(params), readSorting(query));
      if (list.length === 0) throw notFound("존재하지 않는 결제정보입니다.");
      return ok(paymentPage(paginate(list, query.optInt("page", { min: 1 }) ?? 1, readLimit(query))));
    }),
    route("GET", "/payments/status/{payment_status}", ({ params, query }) => {
      const to = query.optInt("to", { min: 0 }) ?? clock.now();
      const from = query.optInt("from", { min: 0 }) ?? to - STATUS_SEARCH_MAX_SECONDS;
      if (from > to) throw badRequest("from 파라미터는 to 파라미터보다 클 수 없습니다.");
      if (to - from > STATUS_SEARCH_MAX_SECONDS) throw badRequest("검색기간은 최대 90일까지 가능합니다.");
      return ok(
        paymentPage(
          state.listPaymentsByStatus({
            status: pathStatus(params),
            from,
            to,
            sorting: readSorting(query),
            page: query.optInt("page", { min: 1 }) ?? 1,
            limit: readLimit(query),
          }),
        ),
      );
    }),
    route("GET", "/payments", ({ query }) => {
      const impUids = idList(query, "imp_uid");
      const merchantUids = idList(query, "merchant_uid");
      const ids = [...impUids, ...merchantUids];
      if (ids.length === 0) throw badRequest("imp_uid[] 또는 merchant_uid[] 파라미터가 필요합니다.");
      if (ids.length > MAX_LOOKUP_IDS) throw badRequest(`imp_uid[] 와 merchant_uid[] 는 합해서 최대 ${MAX_LOOKUP_IDS}개까지 조회할 수 있습니다.`);
      const found: Payment[] = [];
      const missing: string[] = [];
      for (const id of impUids) {
        const p = state.getPayment(id);
        if (p) found.push(p);
        else missing.push(id);
      }
      // An order's latest payment, as /payments/find answers.
      for (const id of merchantUids) {
        const p = state.findPayment(id);
        if (p) found.push(p);
        else missing.push(id);
      }
      return multiple(ids, found.map(paymentToWire), missing);
    }),
    route("POST", "/vbanks", ({ body }) => {
      // The channel picks the PG at Iamport; the emulator has one PG, so any channel key is accepted.
      body.str("channel_key");
      const p = state.issueVbank({
        merchant_uid: body.str("merchant_uid", 40),
        amount: body.num("amount", { positive: true }),
        vbank_code: body.str("vbank_code"),
        vbank_due: readUnixSeconds(body, "vbank_due"),
        vbank_holder: body.optStr("vbank_holder"),
        name: body.optStr("name"),
        ...readBuyer(body),
        // The spec types notice_url as an array; the first URL is the one notified.
        notice_url: body.optStrList("notice_url")?.[0] ?? null,
        custom_data: body.customData(),
      });
      // An issued virtual account is notified (ready), as from the payment window.
      deps.sendWebhooks([webhookJob(p, "vbank")]);
      return ok(paymentToWire(p));
    }),
    route("GET", "/payments/{imp_uid}/balance", ({ params }) => ok(state.paymentBalance(params.imp_uid))),
    route("GET", "/payments/{imp_uid}", ({ params }) => {
      const p = state.getPayment(params.imp_uid);
      if (!p) throw notFound("존재하지 않는 결제정보입니다.");
      return ok(paymentToWire(p));
    }),
  ];
}
