import express, { NextFunction, Request, Response, Router } from "express";
import type { Config } from "../config";
import type { Services } from "../billing/services";
import type { EventSource, Notice } from "../billing/webhook.service";
import { isUid, storableText } from "../billing/validation";
import { WebhookEvent } from "../db/entities";
import { AppError, BadUserInputError, httpStatusOf, toAppError } from "../errors";
import { requireActingFor } from "../security/authz";
import { type Authenticator, restCaller } from "./auth";
import { presentCard, presentPayment } from "./present";

/** Express handler that may throw or reject: errors go to the error middleware. */
type Handler = (req: Request, res: Response) => Promise<void>;
const route = (fn: Handler) => (req: Request, res: Response, next: NextFunction) => fn(req, res).catch(next);

function bodyOf(req: Request): Record<string, unknown> {
  const b = req.body as unknown;
  if (typeof b !== "object" || b === null || Array.isArray(b)) return {};
  return b as Record<string, unknown>;
}

function stringField(body: Record<string, unknown>, field: string, required: true): string;
function stringField(body: Record<string, unknown>, field: string, required?: false): string | undefined;
function stringField(body: Record<string, unknown>, field: string, required = false): string | undefined {
  const v = body[field];
  if (v === undefined || v === null || v === "") {
    if (required) throw new BadUserInputError(field, "is required");
    return undefined;
  }
  if (typeof v !== "string") throw new BadUserInputError(field, "must be a string");
  return v;
}

/** An optional boolean flag of a form or JSON body: true or "true"; absent, false or "false" is false. */
function flagField(body: Record<string, unknown>, field: string): boolean {
  const v = body[field];
  if (v === undefined || v === null || v === "" || v === false || v === "false") return false;
  if (v === true || v === "true") return true;
  throw new BadUserInputError(field, "must be true or false");
}

/**
 * The customer a card route acts for, once the caller may act for it: a
 * merchant key, or a customer token for that customer_uid (header, or the
 * `customer_token` field of a plain form). Checked before anything is sent to
 * Iamport or stored: 401 without valid credentials, 403 for another customer.
 * The token field is taken out of the body, so nothing after this sees it.
 */
function actingCustomer(auth: Authenticator, req: Request, body: Record<string, unknown>): string {
  const formToken = body.customer_token;
  delete body.customer_token;
  const caller = restCaller(auth, req.headers.authorization, formToken);
  const customerUid = stringField(body, "customer_uid", true);
  requireActingFor(caller, customerUid);
  return customerUid;
}

/**
 * A webhook (Iamport's notice or its schedule callback): 200 once durably
 * handled or known irrelevant; 5xx only when a retry could help. Mounted here
 * and on the node:http fast path (src/http/fast-routes.ts).
 */
export function webhookHandler(services: Services, source: EventSource) {
  return route(async (req, res) => {
    const notice = services.webhooks.parseNotice(req.body);
    const result = await services.webhooks.handle(req.ctx, source, notice, { remoteIp: req.ip });
    if (result.kind === "retry") {
      // 503 when waiting helps (Iamport or the database not answering): Iamport delivers the webhook again.
      const status = httpStatusOf(result.error.code);
      res.status(status >= 500 ? status : 500).json({ status: "error", message: "not processed; retry later" });
      return;
    }
    res.status(200).json({
      status: result.kind === "verified" ? "ok" : "ignored",
      outcome: result.kind === "verified" ? result.result.outcome : undefined,
      message: result.kind === "verified" ? result.result.message : result.reason,
    });
  });
}

/**
 * The REST routes of DESIGN.md: Iamport's webhooks, browser returns and billing-key forms.
 * The card routes act for one customer and take credentials (actingCustomer); the webhooks
 * and checkout returns take none, since nothing in them is believed without asking Iamport.
 */
export function restRoutes(services: Services, config: Config, auth: Authenticator): Router {
  const r = Router();

  const webhook = (source: EventSource) => webhookHandler(services, source);
  r.post("/iamport-webhook", webhook("iamport-webhook"));
  r.post("/iamport-callback/schedule", webhook("schedule-callback"));

  // Desktop checkout callback: the page posts {imp_uid, merchant_uid} after IMP.request_pay.
  r.post(
    "/payments/complete",
    route(async (req, res) => {
      const body = bodyOf(req);
      // Validated (and trimmed) like a webhook; the trimmed values are what is recorded and verified.
      const notice: Notice = services.webhooks.parseNotice({
        imp_uid: stringField(body, "imp_uid", true),
        merchant_uid: stringField(body, "merchant_uid", true),
      });
      const result = await services.webhooks.handle(req.ctx, "complete", notice, { remoteIp: req.ip, claimMerchantUid: true });
      if (result.kind === "retry") throw result.error;
      if (result.kind === "ignored") {
        res.status(404).json({ status: "failed", code: "NOT_FOUND", message: result.reason });
        return;
      }
      const v = result.result;
      res.json({ status: v.outcome === "PAID" || v.outcome === "VBANK_ISSUED" ? "success" : "failed", outcome: v.outcome, message: v.message, payment: presentPayment(v.payment) });
    }),
  );

  // Mobile return (m_redirect_url): nothing in the query is trusted; the payment is re-queried.
  r.get(
    "/payments/complete/mobile",
    route(async (req, res) => {
      const q = req.query as Record<string, unknown>;
      // Browsers bring whatever the URL held: stored values are made storable (no NUL, no lone surrogate).
      const raw = (k: string): string | undefined => (typeof q[k] === "string" && q[k] !== "" ? (q[k] as string).slice(0, 200) : undefined);
      const one = (k: string): string | undefined => {
        const v = raw(k);
        return v === undefined ? undefined : storableText(v, 200);
      };
      const impUid = raw("imp_uid"); // validated by parseNotice below (400 when malformed)
      // A hint that is stored and echoed into the redirect: a malformed one is ignored (the customer still gets an answer).
      const rawMerchantUid = raw("merchant_uid");
      const merchantUid = rawMerchantUid !== undefined && isUid(rawMerchantUid) ? rawMerchantUid.trim() : undefined;
      const success = one("imp_success") ?? one("success");
      const errorMsg = one("error_msg");
      let answer: { merchant_uid: string | null; status: string; outcome?: string; message: string };
      if (!impUid) {
        // The customer closed the window or the PG refused before a payment existed.
        const event = req.ctx.em.create(WebhookEvent, {
          source: "mobile-redirect",
          merchantUid: merchantUid ?? null,
          body: { merchant_uid: merchantUid, imp_success: success, error_code: one("error_code"), error_msg: errorMsg },
          remoteIp: req.ip?.slice(0, 64) ?? null,
          processedAt: new Date(),
          outcome: "no imp_uid",
        });
        await req.ctx.em.persistAndFlush(event);
        answer = { merchant_uid: merchantUid ?? null, status: "FAILED", message: errorMsg ?? "The payment was not completed" };
      } else {
        const notice = services.webhooks.parseNotice({ imp_uid: impUid, merchant_uid: merchantUid });
        const result = await services.webhooks.handle(req.ctx, "mobile-redirect", notice, {
          remoteIp: req.ip,
          claimMerchantUid: true,
          extra: { imp_success: success, error_msg: errorMsg },
        });
        if (result.kind === "retry") throw result.error;
        answer =
          result.kind === "verified"
            ? // The verdict about the payment presented (a forged claim leaves the order itself unchanged).
              { merchant_uid: result.result.payment.merchantUid, status: result.result.status, outcome: result.result.outcome, message: result.result.message }
            : { merchant_uid: merchantUid ?? null, status: "UNKNOWN", message: result.reason };
      }
      if (config.mobileRedirectUrl) {
        const target = new URL(config.mobileRedirectUrl);
        if (answer.merchant_uid) target.searchParams.set("merchant_uid", answer.merchant_uid);
        target.searchParams.set("status", answer.status);
        res.redirect(302, target.toString());
        return;
      }
      res.json(answer);
    }),
  );

  // A billing key issued in the browser (IMP.request_pay with customer_uid): confirm it with Iamport.
  r.post(
    "/billings",
    route(async (req, res) => {
      const customerUid = actingCustomer(auth, req, bodyOf(req));
      const card = await services.cards.confirm(req.ctx, customerUid, "customer_uid");
      res.json({ status: "success", card: presentCard(card) });
    }),
  );

  // The seed's billing-key form: card data in, {status, message} out. Card data is never echoed.
  // Replacing the customer's active card takes replace=true (CONFLICT otherwise).
  const issueBilling = route(async (req, res) => {
    const b = bodyOf(req);
    try {
      const customerUid = actingCustomer(auth, req, b);
      const card = await services.cards.register(
        req.ctx,
        {
          customerUid,
          cardNumber: stringField(b, "card_number", true),
          expiry: stringField(b, "expiry", true),
          birth: stringField(b, "birth", true),
          pwd2digit: stringField(b, "pwd_2digit"),
          replace: flagField(b, "replace"),
        },
        { customerUid: "customer_uid", cardNumber: "card_number", expiry: "expiry", birth: "birth", pwd2digit: "pwd_2digit" },
      );
      res.json({ status: "success", message: "Billing key issued", card: presentCard(card) });
    } catch (err) {
      const e = toAppError(err);
      if (e.code === "CARD_REJECTED") {
        res.status(200).json({ status: "failed", message: e.message });
        return;
      }
      if (e.code === "BAD_USER_INPUT") {
        res.status(400).json({ status: "failed", code: e.code, field: e.details.field, message: e.message });
        return;
      }
      throw e;
    }
  });
  r.post("/subscriptions/issue-billing", issueBilling);
  r.post("/subscription/issue-billing", issueBilling);

  return r;
}

/** Body parsers for the REST routes: Iamport sends JSON or forms. */
export function bodyParsers(limit: string) {
  return [express.json({ limit }), express.urlencoded({ extended: false, limit, parameterLimit: 100 })];
}

/** Maps every error once to an HTTP status and a JSON body without internals. */
export function errorHandler(logger: { error(o: object, m: string): void }) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const status = (err as { status?: number; type?: string }).status;
    const type = (err as { type?: string }).type;
    if (type === "entity.too.large" || status === 413) {
      res.status(413).json({ status: "failed", code: "PAYLOAD_TOO_LARGE", message: "The body is too large" });
      return;
    }
    if (type === "entity.parse.failed" || type === "parameters.too.many" || (status && status >= 400 && status < 500 && !(err instanceof AppError))) {
      res.status(400).json({ status: "failed", code: "BAD_USER_INPUT", message: "The body could not be parsed" });
      return;
    }
    const e = toAppError(err);
    if (e.code === "INTERNAL_SERVER_ERROR") logger.error({ err, reqId: req.ctx?.requestId }, "request failed");
    res.status(httpStatusOf(e.code)).json({ status: "failed", code: e.code, message: e.message, ...(e.details.field ? { field: e.details.field } : {}) });
  };
}

