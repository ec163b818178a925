import { setMaxListeners } from "node:events";
import http from "node:http";
import path from "node:path";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import querystring from "node:querystring";
import Fastify, { type FastifyError } from "fastify";
import qs from "qs";
import { Clock } from "./clock";
import { IamportError, unauthorized } from "./errors";
import { FaultRegistry } from "./faults";
import { Params } from "./params";
import { decodePath, RouteTable, type HttpMethod } from "./router";
import { controlRoutes, type HeldCall } from "./routes/control";
import { createIamportRoutes, errorResult, webhookJob, type ApiResult, type IamportRoute } from "./routes/iamport";
import { IamportState } from "./state";
import { readStateFile, StateFileWriter } from "./state-file";
import { tokenFromHeaders, TokenIssuer } from "./tokens";
import { V2Api } from "./v2/api";
import { startV2Server, type RunningV2Server } from "./v2/server";
import { newWebhookSecret, V2WebhookSender, type V2WebhookLogEntry } from "./v2/webhooks";
import { WebhookSender, type WebhookCounts } from "./webhooks";
import type { ExecutedSchedule } from "./state";

export { TEST_CARDS } from "./cards";

/** One Iamport API call, as the emulator's handler reads it. */
interface ApiCall {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  query: unknown;
  body: unknown;
}

export interface EmulatorLogger {
  info(...a: unknown[]): void;
  warn(...a: unknown[]): void;
  error(...a: unknown[]): void;
  /** Optional (pino has it): the per-call request log goes here when present, else to info. */
  debug?(...a: unknown[]): void;
}

/** PortOne V2's API, served beside V1 on a port of its own over the same records, clock, test cards and faults. */
export interface V2EmulatorOptions {
  /** 0 = a random free port; default 4011. */
  port?: number;
  /** `Authorization: PortOne <apiSecret>`; default "portone_emulator_secret". */
  apiSecret?: string;
  /** Default "store-emulator". */
  storeId?: string;
  /** Default "channel-key-emulator". */
  channelKey?: string;
  /** Where V2 webhooks go; if unset, none is sent. */
  webhookUrl?: string;
  /** `whsec_` + base64; default a fresh random one (RunningEmulator.v2.webhookSecret tells it). */
  webhookSecret?: string;
}

export interface RunningV2Emulator {
  /** The origin to give @portone/server-sdk as `baseUrl`. */
  url: string;
  port: number;
  apiSecret: string;
  storeId: string;
  channelKey: string;
  webhookSecret: string;
  setWebhookUrl(url: string | undefined): void;
  /** The V2 webhooks sent (the latest 1000). */
  webhookLog(): V2WebhookLogEntry[];
}

export interface EmulatorOptions {
  /** 0 = a random free port; default 4010. */
  port?: number;
  /** Default "127.0.0.1". */
  host?: string;
  /** Default "imp_apikey". */
  apiKey?: string;
  /** Default "emulator_secret". */
  apiSecret?: string;
  /** Used when a payment/schedule has no notice_url; if neither, no webhook is sent. */
  webhookUrl?: string;
  /** Default "json". */
  webhookContentType?: "json" | "form";
  /** Default 0 (Iamport sends once); retries on network error / 5xx. */
  webhookRetries?: number;
  /** Default 60000. */
  webhookRetryIntervalMs?: number;
  /** Default 16. */
  webhookConcurrency?: number;
  /** Default 30000. */
  webhookTimeoutMs?: number;
  /** Artificial latency added to every Iamport API call (not the control API); default 0. */
  latencyMs?: number;
  /** How long a "timeout" fault holds the answer before destroying the socket; default 120000. */
  timeoutHoldMs?: number;
  /** If > 0, a background ticker runs schedules that became due as real time passes; default 1000; 0 disables. */
  autoRunIntervalMs?: number;
  /**
   * A JSON file that keeps billing keys (masked card details only), payments,
   * schedules, prepared amounts and the clock across restarts: read at start,
   * written shortly after every change and on close. Default: none (memory only).
   */
  stateFile?: string;
  /** Default silent. */
  logger?: EmulatorLogger;
  /** Also serve PortOne V2's API (see V2EmulatorOptions); default off. */
  v2?: V2EmulatorOptions;
}

export interface RunningEmulator {
  url: string;
  port: number;
  close(): Promise<void>;
  setWebhookUrl(url: string | undefined): void;
  /** Whether a billing key is registered for customer_uid (what GET /subscribe/customers/{customer_uid} finds). */
  hasCustomer(customerUid: string): boolean;
  /** Present when started with the `v2` option. */
  v2?: RunningV2Emulator;
}

const SILENT: EmulatorLogger = { info() {}, warn() {}, error() {} };

/** The largest body read, JSON or form. */
const BODY_LIMIT = 50 * 1024 * 1024;

/** A body that is not JSON, or JSON that is not an object or an array. */
class MalformedBody extends Error {
  readonly statusCode = 400;
}

/** A JSON body as Iamport reads it: an object or an array (an empty body is {}); a byte-order mark is not part of it. */
function parseJsonBody(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === "") return {};
  const first = /^[ \t\n\r]*(.)/.exec(body)?.[1];
  if (first !== "{" && first !== "[") throw new MalformedBody("not an object or an array");
  try {
    return JSON.parse(body);
  } catch {
    throw new MalformedBody("malformed JSON");
  }
}

/** A form with qs-style keys (schedules[0][merchant_uid]); an array of any length stays an array. */
function parseForm(text: string): unknown {
  const fields = text.length === 0 ? 0 : text.split("&").length;
  return qs.parse(text, { allowPrototypes: true, depth: 32, arrayLimit: Math.max(100, fields), parameterLimit: Math.max(1000, fields) });
}

/** Starts a stateful Iamport V1 emulator on a real HTTP port. */
export async function startEmulator(opts: EmulatorOptions = {}): Promise<RunningEmulator> {
  const logger = opts.logger ?? SILENT;
  const logCall = (...a: unknown[]) => (logger.debug ? logger.debug(...a) : logger.info(...a));
  const host = opts.host ?? "127.0.0.1";
  const latencyMs = opts.latencyMs ?? 0;
  const timeoutHoldMs = opts.timeoutHoldMs ?? 120_000;
  const autoRunIntervalMs = opts.autoRunIntervalMs ?? 1000;
  let baseUrl = "";

  const clock = new Clock();
  const state = new IamportState(clock, (impUid) => `${baseUrl}/__emulator/receipts/${encodeURIComponent(impUid)}`);
  const tokens = new TokenIssuer();
  const stateFile = opts.stateFile ? path.resolve(opts.stateFile) : undefined;
  const saved = stateFile ? readStateFile(stateFile) : null;
  if (stateFile) {
    if (saved) {
      clock.restoreOffset(saved.clockOffsetSeconds);
      state.restore(saved.state);
      logger.info({ stateFile, ...state.counts() }, "Iamport emulator state restored");
    }
  }
  // Faults, tokens and the webhook log are not kept: they describe one run.
  const persist = stateFile
    ? new StateFileWriter(stateFile, () => ({ clockOffsetSeconds: clock.offset, state: state.snapshot(), ...(v2Api ? { v2: v2Api.snapshot() } : {}) }), logger)
    : null;
  // Handlers only call sendWebhooks at request time, after `webhooks` exists.
  const routes = new RouteTable<IamportRoute>(
    createIamportRoutes({
      state,
      tokens,
      clock,
      credentials: { apiKey: opts.apiKey ?? "imp_apikey", apiSecret: opts.apiSecret ?? "emulator_secret" },
      sendWebhooks: (jobs) => webhooks.send(jobs),
    }),
  );
  const faults = new FaultRegistry({
    hasTemplate: (method, shape): boolean =>
      routes.routes.some((r) => r.method === method && r.templates.some((t) => t.shape === shape)) ||
      (v2Api?.routes.some((r) => r.method === method && r.template.shape === shape) ?? false),
    hasPath: (method, path) => routes.match(method, path).match !== null,
  });
  const webhooks = new WebhookSender({
    url: opts.webhookUrl,
    contentType: opts.webhookContentType ?? "json",
    retries: opts.webhookRetries ?? 0,
    retryIntervalMs: opts.webhookRetryIntervalMs ?? 60_000,
    concurrency: opts.webhookConcurrency ?? 16,
    timeoutMs: opts.webhookTimeoutMs ?? 30_000,
    now: () => clock.now(),
    shouldDrop: () => faults.takeWebhookDrop(),
    logger,
  });

  const v2Opts = opts.v2;
  const v2Webhooks: V2WebhookSender | null = v2Opts
    ? new V2WebhookSender({
        url: v2Opts.webhookUrl,
        secret: v2Opts.webhookSecret ?? newWebhookSecret(),
        timeoutMs: opts.webhookTimeoutMs ?? 30_000,
        shouldDrop: () => faults.takeWebhookDrop(),
        logger,
      })
    : null;
  const v2Credentials = {
    apiSecret: v2Opts?.apiSecret ?? "portone_emulator_secret",
    storeId: v2Opts?.storeId ?? "store-emulator",
    channelKey: v2Opts?.channelKey ?? "channel-key-emulator",
  };
  const v2Api: V2Api | null = v2Webhooks ? new V2Api({ state, clock, credentials: v2Credentials, sendWebhooks: (bodies) => v2Webhooks.send(bodies) }) : null;
  if (v2Api && saved?.v2) v2Api.restore(saved.v2);

  /** The webhooks of schedules that ran: V2's for payments made through V2, V1's for the rest. */
  const deliverExecuted = async (executed: ExecutedSchedule[]): Promise<WebhookCounts> => {
    const paid = executed.flatMap((e) => (e.payment ? [e.payment] : []));
    const v2Paid = v2Api ? paid.filter((p) => v2Api.ownsPayment(p)) : [];
    const v1Jobs = paid.filter((p) => !v2Paid.includes(p)).map((p) => webhookJob(p, "schedule"));
    const [v1, v2] = await Promise.all([webhooks.deliverAll(v1Jobs), v2Webhooks && v2Api ? v2Webhooks.deliverAll(v2Paid.map((p) => v2Api.chargeWebhook(p))) : null]);
    return v2 ? { delivered: v1.delivered + v2.delivered, failed: v1.failed + v2.failed, dropped: v1.dropped + v2.dropped } : v1;
  };

  // Lifecycle: everything that could keep the process alive is tracked here.
  const shutdown = new AbortController();
  setMaxListeners(0, shutdown.signal); // one listener per call waiting out latencyMs
  const held = new Set<{ timer: NodeJS.Timeout; res: http.ServerResponse }>();
  /** Answers of "hold" faults, waiting for the control API to release them. */
  const holding = new Map<number, HeldCall & { timer: NodeJS.Timeout; res: http.ServerResponse; result: ApiResult }>();
  let nextHoldId = 1;

  // Iamport's calls come with a JSON body, a form (qs-style keys such as schedules[0][merchant_uid]) or none.
  // Large limits: a schedule request may carry thousands of items, as a form too.
  let server!: http.Server;
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    exposeHeadRoutes: false,
    serverFactory: (handler) => (server = http.createServer(handler)),
    // Queries as node:querystring reads them: a repeated key is an array, brackets are plain characters (customer_uid[]).
    routerOptions: { ignoreTrailingSlash: true, caseSensitive: false, querystringParser: (q) => querystring.parse(q) },
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, text, done) => {
    try {
      done(null, parseJsonBody(text as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, text, done) => {
    done(null, parseForm(text as string));
  });
  // Another type is not read (as Iamport ignores it): the call sees no body.
  app.addContentTypeParser("*", (_req, payload, done) => {
    payload.resume();
    payload.once("end", () => done(null, undefined));
    payload.once("error", (e) => done(e, undefined));
  });
  // Every call that can change the records (Iamport's and the control API's) is a POST, PUT or DELETE.
  if (persist) {
    app.addHook("onRequest", (req, reply, done) => {
      if (req.method !== "GET" && req.method !== "HEAD") reply.raw.once("close", persist.changed);
      done();
    });
  }

  app.register(
    controlRoutes({
      state,
      clock,
      faults,
      webhooks,
      tokenStats: () => tokens.stats(),
      held: () => [...holding.values()].map(({ id, method, path }) => ({ id, method, path })),
      release: (id) => {
        let released = 0;
        for (const h of [...holding.values()]) {
          if (id !== undefined && h.id !== id) continue;
          clearTimeout(h.timer);
          holding.delete(h.id);
          logCall({ method: h.method, path: h.path, status: h.result.status, code: h.result.body.code }, "iamport call (released)");
          send(h.res, h.result);
          released += 1;
        }
        return released;
      },
      baseUrl: () => baseUrl,
      deliverExecuted,
      reset: () => {
        v2Api?.reset();
        v2Webhooks?.clearLog();
        state.reset();
        clock.reset();
        tokens.clamp(clock.now());
        faults.clear();
        webhooks.clearLog();
      },
    }),
    { prefix: "/__emulator" },
  );

  // An Iamport answer, written to the socket's response (held answers are written later, by a fault's release).
  const send = (res: http.ServerResponse, result: ApiResult) => {
    if (res.headersSent || res.destroyed) return;
    const out = JSON.stringify(result.body);
    res.statusCode = result.status;
    res.setHeader("Content-Type", "application/json; charset=utf-8");
    res.setHeader("Content-Length", Buffer.byteLength(out));
    res.end(out);
  };

  // Every other path is Iamport's API, matched by the emulator's own route table (templates, 404 and 405 as Iamport answers).
  app.all("/*", (req, reply) => {
    reply.hijack();
    const path = req.url.split("?")[0];
    serveApi({ method: req.method, path, headers: req.headers, query: req.query, body: req.body }, reply.raw).catch((err: unknown) => {
      logger.error({ err, method: req.method, path }, "emulator internal error");
      send(reply.raw, { status: 500, body: { code: -1, message: "Internal Server Error", response: null } });
    });
  });

  /** An Iamport API call (JSON or a form, as Iamport accepts both). */
  async function serveApi(req: ApiCall, res: http.ServerResponse): Promise<void> {
    const method = req.method.toUpperCase() as HttpMethod;
    const found = routes.match(method, req.path);
    if (!found.match) {
      if (found.badEncoding) return send(res, errorResult(new IamportError(400, -1, "경로 파라미터의 인코딩이 올바르지 않습니다.")));
      const status = found.methodMismatch ? 405 : 404;
      return send(res, { status, body: { code: -1, message: `${status === 405 ? "Method Not Allowed" : "Not Found"}: ${method} ${req.path}`, response: null } });
    }
    if (latencyMs > 0) {
      try {
        await sleep(latencyMs, undefined, { signal: shutdown.signal });
      } catch {
        return; // shutting down
      }
    }
    const { route, params } = found.match;
    const token = tokenFromHeaders(req.headers);
    const tokenValid = token !== null && tokens.isValid(token, clock.now());
    const fault = faults.takeForCall(
      { method, path: decodePath(req.path) ?? req.path, shapes: route.templates.map((t) => t.shape) },
      (mode) => mode !== "expire_token" || (route.auth && tokenValid),
    );
    if (fault) logger.info({ fault: fault.mode, method, path: req.path }, "injecting fault");

    if (fault?.mode === "http500") {
      return send(res, { status: 500, body: { code: -1, message: "Internal Server Error (emulated fault)", response: null } });
    }

    let result: ApiResult;
    if (route.auth && !tokenValid) {
      result = errorResult(unauthorized(token ? "Unauthorized: access_token이 만료되었거나 유효하지 않습니다." : "Unauthorized: access_token이 필요합니다."));
    } else if (fault?.mode === "expire_token" && token) {
      tokens.expire(token);
      result = errorResult(unauthorized("Unauthorized: access_token이 만료되었습니다."));
    } else {
      result = runHandler(route, params, req);
    }

    if (fault?.mode === "timeout") {
      // The call took effect; its answer never comes. The socket is destroyed
      // after timeoutHoldMs unless the client gave up first.
      if (method !== "GET") persist?.changed();
      const entry = {
        res,
        timer: setTimeout(() => {
          held.delete(entry);
          res.socket?.destroy();
        }, timeoutHoldMs),
      };
      held.add(entry);
      res.on("close", () => {
        clearTimeout(entry.timer);
        held.delete(entry);
      });
      return;
    }
    if (fault?.mode === "hold") {
      // The call took effect; its answer waits for POST /__emulator/faults/release
      // (after timeoutHoldMs the socket is destroyed, as for "timeout").
      const id = nextHoldId++;
      const entry = {
        id,
        method,
        path: req.path,
        res,
        result,
        timer: setTimeout(() => {
          holding.delete(id);
          res.socket?.destroy();
        }, timeoutHoldMs),
      };
      holding.set(id, entry);
      res.on("close", () => {
        clearTimeout(entry.timer);
        holding.delete(id);
      });
      return;
    }
    logCall({ method, path: req.path, status: result.status, code: result.body.code }, "iamport call");
    send(res, result);
  }

  function runHandler(route: IamportRoute, params: Record<string, string>, req: ApiCall): ApiResult {
    try {
      return route.handle({ params, query: Params.of(req.query), body: Params.of(req.body) });
    } catch (e) {
      if (e instanceof IamportError) return errorResult(e);
      logger.error({ err: e, method: req.method, path: req.path }, "emulator internal error");
      return { status: 500, body: { code: -1, message: "Internal Server Error", response: null } };
    }
  }

  // Body parser errors (malformed JSON, too large) and anything unexpected: the control API answers
  // {error}, Iamport's API its envelope.
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode ?? 500;
    const message =
      err.code === "FST_ERR_CTP_BODY_TOO_LARGE"
        ? "request entity too large"
        : err instanceof MalformedBody
          ? "요청 본문을 해석할 수 없습니다. (malformed JSON)"
          : status >= 500
            ? "Internal Server Error"
            : err.message;
    if (status >= 500) logger.error({ err, method: req.method, path: req.url }, "emulator internal error");
    if (/^\/__emulator(\/|\?|$)/i.test(req.url)) return reply.code(status).send({ error: message });
    return reply.code(status).send({ code: -1, message, response: null });
  });

  // Runs schedules that fell due as real time passed; webhooks go out in the background.
  const runDue = () => {
    const executed = state.runDue(clock.now());
    if (executed.length === 0) return;
    persist?.changed();
    logger.info({ count: executed.length }, "ran due schedules");
    void deliverExecuted(executed);
  };
  const ticker = autoRunIntervalMs > 0 ? setInterval(runDue, autoRunIntervalMs) : null;
  ticker?.unref();

  await app.ready();
  const sockets = new Set<Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 4010, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  baseUrl = `http://${urlHost}:${port}`;
  logger.info({ url: baseUrl, control: `${baseUrl}/__emulator` }, `Iamport emulator listening on ${baseUrl}`);

  let v2Server: RunningV2Server | null = null;
  if (v2Api && v2Webhooks) {
    try {
      v2Server = await startV2Server(v2Api, { port: v2Opts?.port ?? 4011, host, faults, logger, onChange: persist?.changed, timeoutHoldMs });
    } catch (e) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw e;
    }
    logger.info({ url: v2Server.url, storeId: v2Credentials.storeId, channelKey: v2Credentials.channelKey }, `PortOne V2 emulator listening on ${v2Server.url}`);
  }

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (ticker) clearInterval(ticker);
      shutdown.abort();
      for (const h of held) clearTimeout(h.timer);
      held.clear();
      for (const h of holding.values()) clearTimeout(h.timer);
      holding.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await v2Server?.close();
      await webhooks.close();
      await v2Webhooks?.close();
      await closed;
      await persist?.close();
    })();
    return closing;
  };

  return {
    url: baseUrl,
    port,
    close,
    setWebhookUrl: (url) => webhooks.setUrl(url),
    hasCustomer: (customerUid) => state.customers.has(customerUid),
    v2:
      v2Server && v2Webhooks
        ? {
            url: v2Server.url,
            port: v2Server.port,
            ...v2Credentials,
            webhookSecret: v2Webhooks.secret,
            setWebhookUrl: (url) => v2Webhooks.setUrl(url),
            webhookLog: () => v2Webhooks.log(),
          }
        : undefined,
  };
}
