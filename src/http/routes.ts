import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, FastifySchemaValidationError, HTTPMethods, RouteHandlerMethod } from "fastify";
import type { AppDeps } from "../app";
import type { Config } from "../config";
import type { Services } from "../billing/services";
import type { EventSource, Notice } from "../billing/webhook.service";
import { isUid, storableText } from "../billing/validation";
import { WebhookEvent } from "../db/entities";
import { WebhookRejectedError, type PaymentProvider, type ProviderWebhook } from "../provider/port";
import { AppError, BadUserInputError, httpStatusOf, toAppError } from "../errors";
import { requireActingFor } from "../security/authz";
import { type Authenticator, requireCaller, restCaller } from "./auth";
import { graphiqlRoutes } from "./graphiql";
import { healthHandlers } from "./health";
import { presentCard, presentPayment } from "./present";
import { callerRateLimit, type Guard, ipRateLimit, webhookAllowList } from "./security";

/**
 * One route: its path, the guards that run before its body is read (in
 * order: allow-lists, rate limits, authentication), those that need the body,
 * the JSON schema of its body or query, and its handler. Every route of the
 * server is in routeTable below.
 */
export interface Route {
  method: HTTPMethods | HTTPMethods[];
  url: string;
  guards?: (Guard | undefined)[];
  /**
   * Guards that read the parsed body (the card routes' credentials may come as a form field).
   * They run before the schema is checked: a caller without credentials learns nothing about the body.
   */
  bodyGuards?: Guard[];
  /** What Fastify checks the body or query against before the handler runs (a 400 BAD_USER_INPUT naming the field otherwise). */
  schema?: Pick<FastifySchema, "body" | "querystring">;
  handler: RouteHandlerMethod;
  /** Iamport's webhooks and the checkout returns: counted by outcome in billing_webhooks_total. */
  webhook?: boolean;
  /** Browsers of CORS_ORIGINS may call it (only /graphql). */
  cors?: boolean;
}

function bodyOf(req: FastifyRequest): Record<string, unknown> {
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

/**
 * The card routes' credentials: a merchant key, or a customer token for the
 * body's customer_uid (header, or the `customer_token` field of a plain form).
 * Checked before anything is sent to Iamport or stored: 401 without valid
 * credentials, 403 for another customer, 400 without customer_uid. The token
 * field is taken out of the body, so nothing after this sees it.
 */
function cardCredentials(auth: Authenticator): Guard {
  return async (req) => {
    const body = bodyOf(req);
    const formToken = body.customer_token;
    delete body.customer_token;
    const caller = restCaller(auth, req.headers.authorization, formToken);
    const customerUid = stringField(body, "customer_uid", true);
    requireActingFor(caller, customerUid);
    req.actingCustomer = customerUid;
  };
}

/**
 * The bodies and queries of the REST routes, as JSON schemas (forms arrive as
 * the same objects: @fastify/formbody). A value of the wrong type, a missing
 * required field or an empty one is refused here; what a value means (an
 * imp_uid's syntax, a status's characters, a card's digits) is checked by the
 * service that uses it.
 */
const text = { type: "string" } as const;
const requiredText = { type: "string", minLength: 1 } as const;
/** Optional form and JSON fields: absent, null or "" all mean "not given". */
const optionalText = { type: ["string", "null"] } as const;

const SCHEMAS = {
  /** Iamport's notice and schedule callback: {imp_uid, merchant_uid, status}; cancellation_id is recorded when well-formed, never refused. */
  webhook: {
    body: { type: "object", required: ["imp_uid"], properties: { imp_uid: text, merchant_uid: optionalText, status: optionalText } },
  },
  /**
   * PortOne V2's webhook: {type, timestamp, data}; unknown fields are ignored. The signature over the raw
   * body is checked by the handler, which records what it refuses.
   */
  portoneWebhook: {
    body: { type: "object", required: ["type"], properties: { type: requiredText, timestamp: optionalText, data: { type: ["object", "null"] } } },
  },
  /** The desktop checkout callback: both ids, as the page got them from IMP.request_pay. */
  checkoutComplete: {
    body: { type: "object", required: ["imp_uid", "merchant_uid"], properties: { imp_uid: requiredText, merchant_uid: requiredText } },
  },
  /**
   * The mobile return: only imp_uid decides anything. The other parameters are
   * hints a browser brings back whatever they hold: cleaned, never refused.
   */
  mobileReturn: {
    querystring: { type: "object", properties: { imp_uid: text } },
  },
  /** A key issued in the browser: the customer (checked with the credentials), and on PortOne V2 the billingKey the browser was given. */
  confirmBilling: {
    body: { type: "object", properties: { customer_uid: text, billing_key: optionalText } },
  },
  /** The seed's billing-key form. */
  issueBilling: {
    body: {
      type: "object",
      required: ["card_number", "expiry", "birth"],
      properties: {
        customer_uid: text,
        card_number: requiredText,
        expiry: requiredText,
        birth: requiredText,
        pwd_2digit: optionalText,
        // A form sends text, JSON a boolean: both spellings; absent or "" is false.
        replace: { enum: [true, false, "true", "false", "", null] },
      },
    },
  },
} satisfies Record<string, Route["schema"]>;

/** An optional text field the schema let through: "" and null mean not given. */
function given(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

/**
 * A webhook (Iamport's notice or its schedule callback): 200 once durably
 * handled or known irrelevant; 5xx only when a retry could help.
 */
function webhookHandler(services: Services, source: EventSource): RouteHandlerMethod {
  return async (req, reply) => {
    const notice = services.webhooks.parseNotice(req.body);
    const result = await services.webhooks.handle(req.ctx, source, notice, { remoteIp: req.ip });
    if (result.kind === "retry") {
      // 503 when waiting helps (Iamport or the database not answering): Iamport delivers the webhook again.
      const status = httpStatusOf(result.error.code);
      return reply.code(status >= 500 ? status : 500).send({ status: "error", message: "not processed; retry later" });
    }
    return reply.code(200).send({
      status: result.kind === "verified" ? "ok" : "ignored",
      outcome: result.kind === "verified" ? result.result.outcome : undefined,
      message: result.kind === "verified" ? result.result.message : result.reason,
    });
  };
}

/**
 * PortOne V2's webhook: the Standard Webhooks signature is verified over the
 * raw body first (a bad or old one is refused 400/401 and recorded); a
 * Transaction.* event names a paymentId (this server's merchant_uid), which
 * is recorded and re-queried from PortOne as every V1 notice is; billing-key
 * events and unknown types are recorded and answered 200.
 */
function portoneWebhook(services: Services, provider: PaymentProvider): RouteHandlerMethod {
  const source = "portone-webhook";
  return async (req, reply) => {
    if (!provider.parseWebhook) {
      return reply.code(404).send({ status: "failed", code: "NOT_FOUND", message: "PortOne V2 is not this server's provider (PAYMENT_PROVIDER)" });
    }
    const raw = req.rawBody ?? "";
    const claimed = bodyOf(req);
    const type = typeof claimed.type === "string" ? claimed.type.slice(0, 60) : undefined;
    const webhookId = typeof req.headers["webhook-id"] === "string" ? req.headers["webhook-id"].slice(0, 100) : undefined;
    let hook: ProviderWebhook;
    try {
      hook = provider.parseWebhook(raw, req.headers);
    } catch (err) {
      if (!(err instanceof WebhookRejectedError)) throw err;
      await services.webhooks.recordOnly(req.ctx, {
        source,
        claimedStatus: type,
        body: { type, webhook_id: webhookId },
        remoteIp: req.ip,
        outcome: `rejected: ${err.message}`,
      });
      req.ctx.log.warn({ webhookId, reason: err.message }, "PortOne webhook refused");
      return reply.code(err.status).send({ status: "failed", code: err.status === 401 ? "UNAUTHENTICATED" : "BAD_USER_INPUT", message: err.message });
    }
    if (hook.kind !== "payment" || !isUid(hook.merchantUid)) {
      const what = hook.kind === "billing-key" ? `recorded: ${hook.type}` : `ignored: ${hook.type || "no type"} is not acted on`;
      await services.webhooks.recordOnly(req.ctx, {
        source,
        claimedStatus: hook.type,
        body: { type: hook.type, webhook_id: webhookId, ...(hook.kind === "billing-key" ? { billing_key: hook.billingKey } : {}) },
        remoteIp: req.ip,
        outcome: what,
      });
      return reply.code(200).send({ status: "ignored", message: what });
    }
    const notice: Notice = { impUid: hook.impUid, merchantUid: hook.merchantUid, claimedStatus: hook.type, cancellationId: hook.cancellationId };
    const result = await services.webhooks.handle(req.ctx, source, notice, { remoteIp: req.ip, extra: { type: hook.type, webhook_id: webhookId } });
    if (result.kind === "retry") {
      // PortOne delivers a webhook again after a 5xx.
      const status = httpStatusOf(result.error.code);
      return reply.code(status >= 500 ? status : 500).send({ status: "error", message: "not processed; retry later" });
    }
    return reply.code(200).send({
      status: result.kind === "verified" ? "ok" : "ignored",
      outcome: result.kind === "verified" ? result.result.outcome : undefined,
      message: result.kind === "verified" ? result.result.message : result.reason,
    });
  };
}

/** The desktop checkout callback: the page posts {imp_uid, merchant_uid} after IMP.request_pay. */
function checkoutComplete(services: Services): RouteHandlerMethod {
  return async (req, reply) => {
    const body = req.body as { imp_uid: string; merchant_uid: string };
    // Validated (and trimmed) like a webhook; the trimmed values are what is recorded and verified.
    const notice: Notice = services.webhooks.parseNotice({ imp_uid: body.imp_uid, merchant_uid: body.merchant_uid });
    const result = await services.webhooks.handle(req.ctx, "complete", notice, { remoteIp: req.ip, claimMerchantUid: true });
    if (result.kind === "retry") throw result.error;
    if (result.kind === "ignored") return reply.code(404).send({ status: "failed", code: "NOT_FOUND", message: result.reason });
    const v = result.result;
    return { status: v.outcome === "PAID" || v.outcome === "VBANK_ISSUED" ? "success" : "failed", outcome: v.outcome, message: v.message, payment: presentPayment(v.payment) };
  };
}

/** The mobile return (m_redirect_url): nothing in the query is trusted; the payment is re-queried. */
function mobileReturn(services: Services, config: Config): RouteHandlerMethod {
  return async (req, reply) => {
    const query = req.query as Record<string, unknown>;
    // Browsers bring whatever the URL held: stored values are made storable (no NUL, no lone surrogate).
    const raw = (k: string): string | undefined => (typeof query[k] === "string" && query[k] !== "" ? (query[k] as string).slice(0, 200) : undefined);
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
      return reply.redirect(target.toString(), 302);
    }
    return answer;
  };
}

/**
 * A billing key issued in the browser, confirmed with the provider: Iamport V1's
 * customer_uid (IMP.request_pay), or PortOne V2's billing_key (requestIssueBillingKey).
 */
function confirmBilling(services: Services): RouteHandlerMethod {
  return async (req) => {
    const b = (req.body ?? {}) as { billing_key?: string | null };
    const card = await services.cards.confirm(req.ctx, req.actingCustomer!, { customerUid: "customer_uid", billingKey: "billing_key" }, b.billing_key);
    return { status: "success", card: presentCard(card) };
  };
}

/**
 * The seed's billing-key form: card data in, {status, message} out. Card data is never echoed.
 * Replacing the customer's active card takes replace=true (CONFLICT otherwise).
 */
function issueBilling(services: Services): RouteHandlerMethod {
  return async (req, reply) => {
    const b = req.body as { card_number: string; expiry: string; birth: string; pwd_2digit?: string | null; replace?: boolean | string | null };
    try {
      const card = await services.cards.register(
        req.ctx,
        {
          customerUid: req.actingCustomer!,
          cardNumber: b.card_number,
          expiry: b.expiry,
          birth: b.birth,
          pwd2digit: given(b.pwd_2digit),
          replace: b.replace === true || b.replace === "true",
        },
        { customerUid: "customer_uid", cardNumber: "card_number", expiry: "expiry", birth: "birth", pwd2digit: "pwd_2digit" },
      );
      return { status: "success", message: "Billing key issued", card: presentCard(card) };
    } catch (err) {
      const e = toAppError(err);
      // A declined card is an answer of the form, not an error.
      if (e.code === "CARD_REJECTED") return reply.code(200).send({ status: "failed", message: e.message });
      throw e;
    }
  };
}

export interface RouteDeps extends Pick<AppDeps, "config" | "services" | "orm" | "provider" | "logger" | "metrics"> {
  /** The Fastify instance whose rate-limit plugin counts the limits. */
  app: FastifyInstance;
  auth: Authenticator;
  /** GraphiQL's prefilled key (development only). */
  graphiqlKey?: string;
  /** Apollo Server behind /graphql. */
  graphql: RouteHandlerMethod;
}

/**
 * Every route of the server, with its guards: health and metrics (never
 * limited), GraphiQL, /graphql (CORS, per-IP limit, authentication,
 * per-caller limit), Iamport's webhooks (allow-list, a larger per-IP budget),
 * and the public REST routes of DESIGN.md (per-IP limit; the card routes
 * also take credentials). Webhooks and checkout returns take none, since
 * nothing in them is believed without asking Iamport.
 */
export function routeTable(deps: RouteDeps): Route[] {
  const { app, config, services, auth } = deps;
  const publicLimit = ipRateLimit(app, config.rateLimitPublicPerMinute, "public");
  // Iamport sends bursts from few addresses (every renewal of the 1st of the month): a larger budget there.
  const webhookGuards = [webhookAllowList(config.webhookAllowedIps), ipRateLimit(app, config.rateLimitPublicPerMinute * 10, "webhook")];
  const cardGuards = [cardCredentials(auth)];
  const health = healthHandlers(deps);
  return [
    { method: "GET", url: "/healthz", handler: health.healthz },
    { method: "GET", url: "/readyz", handler: health.readyz },
    {
      method: "GET",
      url: "/metrics",
      handler: async (_req, reply) => reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
    },
    ...graphiqlRoutes({ enabled: config.graphiqlEnabled, apiKey: deps.graphiqlKey, rootRedirect: config.env === "development" }),
    {
      // GET carries queries only (Apollo refuses mutations over GET); OPTIONS is the CORS preflight.
      method: ["GET", "POST", "OPTIONS"],
      url: "/graphql",
      cors: true,
      guards: [ipRateLimit(app, config.rateLimitPublicPerMinute * 10, "graphql-ip"), requireCaller(auth), callerRateLimit(app, config.rateLimitPerMinute)],
      handler: deps.graphql,
    },
    { method: "POST", url: "/iamport-webhook", webhook: true, guards: webhookGuards, schema: SCHEMAS.webhook, handler: webhookHandler(services, "iamport-webhook") },
    { method: "POST", url: "/portone-webhook", webhook: true, guards: webhookGuards, schema: SCHEMAS.portoneWebhook, handler: portoneWebhook(services, deps.provider) },
    { method: "POST", url: "/iamport-callback/schedule", webhook: true, guards: webhookGuards, schema: SCHEMAS.webhook, handler: webhookHandler(services, "schedule-callback") },
    { method: "POST", url: "/payments/complete", webhook: true, guards: [publicLimit], schema: SCHEMAS.checkoutComplete, handler: checkoutComplete(services) },
    { method: "GET", url: "/payments/complete/mobile", webhook: true, guards: [publicLimit], schema: SCHEMAS.mobileReturn, handler: mobileReturn(services, config) },
    { method: "POST", url: "/billings", guards: [publicLimit], bodyGuards: cardGuards, schema: SCHEMAS.confirmBilling, handler: confirmBilling(services) },
    { method: "POST", url: "/subscriptions/issue-billing", guards: [publicLimit], bodyGuards: cardGuards, schema: SCHEMAS.issueBilling, handler: issueBilling(services) },
    { method: "POST", url: "/subscription/issue-billing", guards: [publicLimit], bodyGuards: cardGuards, schema: SCHEMAS.issueBilling, handler: issueBilling(services) },
  ];
}

/** Maps every error once to an HTTP status and a JSON body without internals. */
export function errorHandler(logger: { error(o: object, m: string): void }) {
  return (err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const status = (err as { statusCode?: number }).statusCode;
    const code = (err as { code?: string }).code;
    if (status === 413 || code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      // The rest of the body is not read: the connection cannot carry another request.
      return reply.code(413).header("connection", "close").send({ status: "failed", code: "PAYLOAD_TOO_LARGE", message: "The body is too large" });
    }
    const validation = (err as { validation?: FastifySchemaValidationError[] }).validation;
    if (validation) return reply.code(400).send(schemaRefusal(validation[0]));
    if (status === 415 || code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
      return reply.code(415).send({ status: "failed", code: "UNSUPPORTED_MEDIA_TYPE", message: "Send the body as application/json (or a form on the REST routes)" });
    }
    // Fastify's own refusals of a request it could not read (and the body parsers' errors).
    if (status && status >= 400 && status < 500 && !(err instanceof AppError)) {
      return reply.code(400).send({ status: "failed", code: "BAD_USER_INPUT", message: "The body could not be parsed" });
    }
    const e = toAppError(err);
    if (e.code === "INTERNAL_SERVER_ERROR") logger.error({ err, reqId: req.ctx?.requestId }, "request failed");
    return reply.code(httpStatusOf(e.code)).send({ status: "failed", code: e.code, message: e.message, ...(e.details.field ? { field: e.details.field } : {}) });
  };
}

/**
 * A body or query the route's schema refused, as BadUserInputError answers:
 * the field and what is wrong with it, never the value (it may be card data).
 */
export function schemaRefusal(e: FastifySchemaValidationError | undefined): { status: "failed"; code: "BAD_USER_INPUT"; message: string; field: string } {
  const params = (e?.params ?? {}) as { missingProperty?: string; type?: string | string[]; limit?: number };
  const fromPath = e?.instancePath.replace(/^\//, "").replace(/\//g, ".") ?? "";
  const field = e?.keyword === "required" ? String(params.missingProperty) : fromPath || "body";
  let problem: string;
  switch (e?.keyword) {
    case "required":
      problem = "is required";
      break;
    case "type": {
      const types = [params.type ?? []].flat().filter((t) => t !== "null");
      problem = field === "body" ? "must be an object" : `must be a ${types.join(" or ")}`;
      break;
    }
    case "minLength":
      problem = params.limit === 1 ? "is required" : `must be at least ${params.limit} characters`;
      break;
    case "enum":
      problem = field === "replace" ? "must be true or false" : "is not one of the allowed values";
      break;
    default:
      problem = e?.message ?? "is invalid";
  }
  return { status: "failed", code: "BAD_USER_INPUT", message: `${field} ${problem}`, field };
}
