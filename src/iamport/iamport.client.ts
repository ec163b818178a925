import axios, { AxiosError, AxiosInstance, AxiosRequestConfig, AxiosResponse, Method } from "axios";
import type { Logger } from "pino";
import { iamportAgents, nodeHttpAdapter, type IdempotentConfig } from "./http-adapter";
import {
  IamportError,
  IamportNotFoundError,
  IamportRefusedError,
  IamportTimeoutError,
  IamportUnauthorizedError,
  IamportUnavailableError,
} from "./iamport.errors";
import type {
  AgainRequest,
  CancelRequest,
  IamportCustomer,
  IamportEnvelope,
  IamportPayment,
  IamportPrepared,
  IamportSchedule,
  IamportToken,
  IssueBillingKeyRequest,
  ScheduleEntry,
} from "./iamport.types";

export interface IamportClientOptions {
  baseUrl: string;
  apiKey: string;
  apiSecret: string;
  timeoutMs: number;
  logger: Logger;
  /** Refresh the token this long before Iamport says it expires (clock skew, slow calls). */
  refreshMarginSeconds?: number;
  /** Called after every call (metrics). */
  onCall?: (endpoint: string, outcome: string, seconds: number) => void;
  /**
   * The API is the emulator: a call refused 401 is then its clock moving past
   * the token's expiry (POST /__emulator/clock/advance), an expected event
   * logged at info with that reason instead of a warning.
   */
  emulator?: boolean;
}

interface CachedToken {
  token: string;
  /** Iamport's clock when the token was fetched. */
  now: number;
  /** Local epoch milliseconds after which the token must not be used. */
  refreshAfter: number;
}

interface CallOptions {
  /** Request id of the caller, for log correlation. */
  requestId?: string;
}

/** The typed Iamport V1 client: token cache, envelope unwrapping, typed errors, timeouts. */
export class IamportClient {
  private readonly http: AxiosInstance;
  private cached?: CachedToken;
  private refreshing?: Promise<CachedToken>;
  private readonly margin: number;

  constructor(private readonly options: IamportClientOptions) {
    this.margin = options.refreshMarginSeconds ?? 60;
    this.http = axios.create({
      baseURL: options.baseUrl.replace(/\/+$/, ""),
      timeout: options.timeoutMs,
      // The envelope is read whatever the status: a 4xx body still explains the refusal.
      validateStatus: () => true,
      // Iamport's API never redirects: requests go straight to node:http (http-adapter.ts).
      maxRedirects: 0,
      adapter: nodeHttpAdapter(iamportAgents(64)),
    });
    // The same two headers on every call, without axios's per-method defaults (common, get, post, ...),
    // which it deep-merges into every request: ~20% of axios's own CPU a call (bench/README.md).
    this.http.defaults.headers = { "Content-Type": "application/json", Accept: "application/json" } as unknown as typeof this.http.defaults.headers;
  }

  // ---- billing keys -------------------------------------------------------

  /** Issues (or replaces) the billing key of customer_uid. Card data is sent, never logged. */
  issueBillingKey(customerUid: string, body: IssueBillingKeyRequest, o?: CallOptions): Promise<IamportCustomer> {
    // The same card for the same customer_uid: sending it twice leaves the same billing key.
    return this.call("POST", `/subscribe/customers/${enc(customerUid)}`, "POST /subscribe/customers/{customer_uid}", body, o, { idempotent: true });
  }

  getCustomer(customerUid: string, o?: CallOptions): Promise<IamportCustomer> {
    return this.call("GET", `/subscribe/customers/${enc(customerUid)}`, "GET /subscribe/customers/{customer_uid}", undefined, o);
  }

  deleteCustomer(customerUid: string, o?: CallOptions): Promise<IamportCustomer> {
    return this.call(
      "DELETE",
      `/subscribe/customers/${enc(customerUid)}`,
      "DELETE /subscribe/customers/{customer_uid}",
      undefined,
      o,
    );
  }

  // ---- charges and schedules ----------------------------------------------

  again(body: AgainRequest, o?: CallOptions): Promise<IamportPayment> {
    return this.call("POST", "/subscribe/payments/again", "POST /subscribe/payments/again", body, o);
  }

  schedule(customerUid: string, schedules: ScheduleEntry[], o?: CallOptions): Promise<IamportSchedule[]> {
    return this.call(
      "POST",
      "/subscribe/payments/schedule",
      "POST /subscribe/payments/schedule",
      { customer_uid: customerUid, schedules },
      o,
    );
  }

  unschedule(customerUid: string, merchantUids?: string[], o?: CallOptions): Promise<IamportSchedule[]> {
    const body: Record<string, unknown> = { customer_uid: customerUid };
    if (merchantUids) body.merchant_uid = merchantUids;
    return this.call("POST", "/subscribe/payments/unschedule", "POST /subscribe/payments/unschedule", body, o);
  }

  getSchedule(merchantUid: string, o?: CallOptions): Promise<IamportSchedule> {
    return this.call(
      "GET",
      `/subscribe/payments/schedule/${enc(merchantUid)}`,
      "GET /subscribe/payments/schedule/{merchant_uid}",
      undefined,
      o,
    );
  }

  // ---- payments -----------------------------------------------------------

  getPayment(impUid: string, o?: CallOptions): Promise<IamportPayment> {
    return this.call("GET", `/payments/${enc(impUid)}`, "GET /payments/{imp_uid}", undefined, o);
  }

  /** The latest payment of an order; IamportNotFoundError when Iamport has none. */
  findPayment(merchantUid: string, o?: CallOptions): Promise<IamportPayment> {
    return this.call("GET", `/payments/find/${enc(merchantUid)}`, "GET /payments/find/{merchant_uid}", undefined, o);
  }

  cancel(body: CancelRequest, o?: CallOptions): Promise<IamportPayment> {
    return this.call("POST", "/payments/cancel", "POST /payments/cancel", body, o);
  }

  prepare(merchantUid: string, amount: number, o?: CallOptions): Promise<IamportPrepared> {
    return this.call("POST", "/payments/prepare", "POST /payments/prepare", { merchant_uid: merchantUid, amount }, o);
  }

  /** Obtains a token (cached); used by readiness checks. */
  async ensureToken(): Promise<void> {
    await this.token();
  }

  /**
   * Iamport's clock (UNIX seconds), read from getToken's `now` (which also
   * refreshes the cache). Reconciliation compares schedule times with it.
   */
  async serverNow(): Promise<number> {
    return (await this.fetchToken()).now;
  }

  // ---- transport ----------------------------------------------------------

  private async token(): Promise<string> {
    const cached = this.cached;
    if (cached && Date.now() < cached.refreshAfter) return cached.token;
    // One refresh in flight at a time: concurrent callers share it.
    if (!this.refreshing) {
      this.refreshing = this.fetchToken().finally(() => {
        this.refreshing = undefined;
      });
    }
    return (await this.refreshing).token;
  }

  private async fetchToken(): Promise<CachedToken> {
    const endpoint = "POST /users/getToken";
    const started = process.hrtime.bigint();
    let res: AxiosResponse<IamportEnvelope<IamportToken>>;
    try {
      const idempotent: AxiosRequestConfig & IdempotentConfig = { idempotent: true };
      res = await this.http.post("/users/getToken", { imp_key: this.options.apiKey, imp_secret: this.options.apiSecret }, idempotent);
    } catch (err) {
      throw this.transportError(err, endpoint, started, undefined);
    }
    const seconds = elapsed(started);
    const env = res.data;
    if (res.status === 401 || res.status === 403) {
      this.record(endpoint, "unauthorized", seconds, res.status, undefined);
      throw new IamportUnauthorizedError(
        "Iamport refused the API key and secret (HTTP 401): check IAMPORT_API_KEY and IAMPORT_API_SECRET",
        endpoint,
      );
    }
    if (res.status >= 500 || !isEnvelope(env) || env.code !== 0 || !env.response) {
      this.record(endpoint, "unavailable", seconds, res.status, undefined);
      throw new IamportUnavailableError(`Iamport could not issue a token (HTTP ${res.status})`, endpoint);
    }
    this.record(endpoint, "ok", seconds, res.status, undefined);
    const t = env.response;
    // Iamport's `now` and `expired_at` are its clock: use only their difference, so skew does not matter.
    const lifetime = Math.max(0, t.expired_at - t.now - this.margin);
    const cached = { token: t.access_token, now: t.now, refreshAfter: Date.now() + lifetime * 1000 };
    this.cached = cached;
    return cached;
  }

  /**
   * A token for a call that Iamport answered 401 with `refused`: one issued
   * after that answer. A refresh already in flight may have been asked before
   * the token expired and bring the same token back; then it is asked once more.
   * Iamport handing back `refused` even so means it still calls that token valid.
   */
  private async tokenAfter(refused: string): Promise<string> {
    for (let i = 0; i < 2; i++) {
      if (this.cached?.token === refused) this.cached = undefined;
      const token = await this.token();
      if (token !== refused) return token;
    }
    return refused;
  }

  private async call<T>(
    method: Method,
    path: string,
    endpoint: string,
    body: unknown,
    o: CallOptions | undefined,
    flags: { idempotent?: boolean; token?: string; repeats?: number } = {},
  ): Promise<T> {
    let token: string;
    try {
      token = flags.token ?? (await this.token());
    } catch (err) {
      throw notSent(err, endpoint);
    }
    const started = process.hrtime.bigint();
    let res: AxiosResponse<IamportEnvelope<T>>;
    try {
      const config: AxiosRequestConfig & IdempotentConfig = {
        method,
        url: path,
        data: body,
        headers: { Authorization: `Bearer ${token}`, ...(o?.requestId ? { "X-Request-Id": o.requestId } : {}) },
        idempotent: flags.idempotent,
      };
      res = await this.http.request(config);
    } catch (err) {
      throw this.transportError(err, endpoint, started, o?.requestId);
    }
    const seconds = elapsed(started);
    const env = res.data;
    if (res.status === 401) {
      // Iamport did not execute the call: its token expired or was revoked meanwhile. Every call
      // refused with that token waits for the same single refresh and is sent again with the new
      // token, unchanged (a charge under its same merchant_uid, which Iamport never charges twice).
      // Under load a token can expire while calls are in flight on it more than once in a row, so
      // the repeat is per refused token; only a token Iamport still calls valid ends it (the 401 is
      // then about the credentials), or MAX_TOKEN_REPEATS, a bound against a misbehaving Iamport.
      this.record(endpoint, "unauthorized", seconds, res.status, o?.requestId, undefined, undefined, this.options.emulator ? EMULATOR_TOKEN_EXPIRED : undefined);
      let next: string;
      try {
        next = await this.tokenAfter(token);
      } catch (err) {
        throw notSent(err, endpoint);
      }
      const repeats = flags.repeats ?? 0;
      if (next !== token && repeats < MAX_TOKEN_REPEATS) {
        return this.call<T>(method, path, endpoint, body, o, { ...flags, token: next, repeats: repeats + 1 });
      }
      throw new IamportUnauthorizedError(`Iamport answered 401 to ${endpoint} with a token it issued after the previous refusal`, endpoint);
    }
    if (res.status >= 500) {
      this.record(endpoint, "unavailable", seconds, res.status, o?.requestId);
      throw new IamportUnavailableError(`Iamport answered HTTP ${res.status} to ${endpoint}`, endpoint);
    }
    if (!isEnvelope(env)) {
      this.record(endpoint, "unavailable", seconds, res.status, o?.requestId);
      throw new IamportUnavailableError(`Iamport answered ${endpoint} with an unexpected body (HTTP ${res.status})`, endpoint);
    }
    if (res.status === 404) {
      this.record(endpoint, "not_found", seconds, res.status, o?.requestId, env.code);
      throw new IamportNotFoundError(env.message ?? "not found", endpoint);
    }
    if (env.code !== 0 || env.response === null || env.response === undefined) {
      this.record(endpoint, "refused", seconds, res.status, o?.requestId, env.code);
      throw new IamportRefusedError(env.code, env.message ?? "refused", res.status, endpoint);
    }
    this.record(endpoint, "ok", seconds, res.status, o?.requestId, env.code);
    return env.response;
  }

  private transportError(err: unknown, endpoint: string, started: bigint, requestId: string | undefined): IamportError {
    const seconds = elapsed(started);
    const ax = err as AxiosError;
    if (ax.code === "ECONNABORTED" || ax.code === "ETIMEDOUT" || ax.code === "ERR_CANCELED") {
      this.record(endpoint, "timeout", seconds, undefined, requestId);
      return new IamportTimeoutError(`Iamport did not answer ${endpoint} within ${this.options.timeoutMs} ms`, endpoint);
    }
    this.record(endpoint, "network", seconds, undefined, requestId, undefined, ax.code ?? "network error");
    // Only the error code goes into the message: axios errors carry the request body.
    // A refused connection carried nothing to Iamport; any other network error may have come after the request.
    return new IamportUnavailableError(`Iamport is unreachable for ${endpoint} (${ax.code ?? "network error"})`, endpoint, {
      notSent: ax.code === "ECONNREFUSED",
    });
  }

  private record(
    endpoint: string,
    outcome: string,
    seconds: number,
    status: number | undefined,
    requestId: string | undefined,
    code?: number,
    /** The transport's error code (ECONNRESET, ...): never the error itself, which carries the request body. */
    error?: string,
    /** Why an outcome that is usually a warning is expected here: logged at info with this reason. */
    expected?: string,
  ): void {
    this.options.onCall?.(endpoint, outcome, seconds);
    const level = expected || outcome === "ok" || outcome === "refused" || outcome === "not_found" ? "info" : "warn";
    this.options.logger[level](
      { iamport: { endpoint, outcome, status, code, error, ms: Math.round(seconds * 1000) }, reqId: requestId, ...(expected ? { reason: expected } : {}) },
      "iamport call",
    );
  }
}

/**
 * How many times one call is sent again after 401s, each time with a token
 * Iamport issued after the previous refusal. A token expires every 30
 * minutes; this only bounds an Iamport that keeps refusing the tokens it issues.
 */
const MAX_TOKEN_REPEATS = 8;

const EMULATOR_TOKEN_EXPIRED = "the access token expired when the emulator's clock moved ahead; the call is sent again with a new token";

/** A call that failed before it was sent (no token): wrong credentials stay what they are; anything else is "unavailable, nothing sent". */
function notSent(err: unknown, endpoint: string): IamportError {
  if (err instanceof IamportUnauthorizedError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new IamportUnavailableError(`No Iamport token for ${endpoint}, so it was not sent: ${message}`, endpoint, { cause: err, notSent: true });
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function elapsed(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function isEnvelope(v: unknown): v is IamportEnvelope<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { code?: unknown }).code === "number";
}
