import type { IncomingMessage, ServerResponse } from "node:http";
import { ApolloServer, HeaderMap } from "@apollo/server";
import querystring from "node:querystring";
import bytes from "bytes";
import type { Express } from "express";
import proxyaddr from "proxy-addr";
import { httpStatusOf, toAppError } from "../errors";

/** A connect-style middleware (helmet, cors, express-rate-limit). */
export type Middleware = (req: never, res: never, next: (err?: unknown) => void) => void;

export interface GraphqlEndpointDeps<TContext extends object> {
  apollo: ApolloServer<TContext>;
  /** The express app: its trust-proxy setting gives req.ip to the rate limiters. */
  app: Express;
  bodyLimit: string;
  /** Run in order before the body is read; each may answer (and then not call next). */
  before: Middleware[];
  /** Run after `before` (authentication): answers or returns what the context needs. */
  authenticate(req: IncomingMessage, res: ServerResponse & { locals: Record<string, unknown> }): boolean;
  /** Rate limits that need the caller (res.locals.caller), run after authenticate. */
  after: Middleware[];
  /** Per-request context, built once the request is accepted. */
  context(req: IncomingMessage, res: ServerResponse & { locals: Record<string, unknown> }): TContext;
  onError(err: unknown, req: IncomingMessage): void;
}

export type Res = ServerResponse & {
  locals: Record<string, unknown>;
  status(code: number): Res;
  json(body: unknown): Res;
  send(body: unknown): Res;
  append(name: string, value: string | string[]): Res;
};

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const out = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", Buffer.byteLength(out));
  res.end(out);
}

/**
 * The little of Express's request/response API that helmet, cors and
 * express-rate-limit use, on a plain node:http pair: so the same middleware
 * instances guard /graphql here and on the Express routes.
 */
export function expressLike(req: IncomingMessage, res: ServerResponse, app: Express): Res {
  const r = res as Res;
  r.locals = {};
  r.status = (code) => {
    r.statusCode = code;
    return r;
  };
  r.json = (body) => {
    sendJson(r, r.statusCode, body);
    return r;
  };
  r.send = (body) => {
    if (typeof body === "string" || Buffer.isBuffer(body)) r.end(body);
    else r.json(body);
    return r;
  };
  r.append = (name, value) => {
    const prev = r.getHeader(name);
    const add = Array.isArray(value) ? value : [value];
    r.setHeader(name, prev === undefined ? add : ([] as string[]).concat(prev as string | string[], add));
    return r;
  };
  // A plain property: defining a getter on every request cost ~1% of a read's CPU (bench/README.md).
  (req as IncomingMessage & { ip?: string }).ip = proxyaddr(req, app.get("trust proxy fn"));
  (req as IncomingMessage & { app: Express; originalUrl: string }).app = app;
  (req as IncomingMessage & { originalUrl: string }).originalUrl = req.url ?? "/graphql";
  return r;
}

export function runMiddleware(mw: Middleware, req: IncomingMessage, res: Res): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let called = false;
    const next = (err?: unknown) => {
      called = true;
      if (err) reject(err);
      else resolve(true);
    };
    try {
      const ret = (mw as unknown as (q: IncomingMessage, s: Res, n: typeof next) => unknown)(req, res, next);
      // A middleware that answered (or will answer) without calling next.
      Promise.resolve(ret).then(
        () => {
          if (!called) {
            if (res.writableEnded || res.headersSent) resolve(false);
            else {
              // Answered later, or never: the client went away.
              res.once("finish", () => resolve(false));
              res.once("close", () => resolve(false));
            }
          }
        },
        reject,
      );
    } catch (err) {
      reject(err);
    }
  });
}

const MEDIA_JSON = /^application\/json\s*(;|$)/i;

export class BodyError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new BodyError(413, "PAYLOAD_TOO_LARGE", "The body is too large"));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        reject(new BodyError(413, "PAYLOAD_TOO_LARGE", "The body is too large"));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (!failed) resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    });
    // The client went away mid-body: nothing to answer, nothing to log as a server error.
    const gone = () => {
      if (!failed) reject(new BodyError(400, "BAD_USER_INPUT", "The body could not be read"));
      failed = true;
    };
    req.on("error", gone);
    req.on("aborted", gone);
  });
}

const MEDIA_FORM = /^application\/x-www-form-urlencoded\s*(;|$)/i;

/**
 * The body as express.json() gives it (an object or array), and with `form`
 * as express.urlencoded({ extended: false, parameterLimit: 100 }) too;
 * undefined for other media types.
 */
export async function parseBody(req: IncomingMessage, limit: number, form = false): Promise<unknown> {
  const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
  if (encoding !== "identity") throw new BodyError(415, "UNSUPPORTED_MEDIA_TYPE", `Content-Encoding ${encoding.slice(0, 20)} is not supported`);
  const raw = await readBody(req, limit);
  const type = req.headers["content-type"] ?? "";
  if (MEDIA_JSON.test(type)) {
    // Decoded as express.json() decodes: a UTF-8 byte-order mark is not part of the JSON.
    let text = raw.toString("utf8");
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const first = /^[ \t\n\r]*(.)/.exec(text)?.[1];
    // express.json's strict mode: only objects and arrays.
    if (first !== "{" && first !== "[") throw new BodyError(400, "BAD_USER_INPUT", "The body could not be parsed");
    try {
      return JSON.parse(text);
    } catch {
      throw new BodyError(400, "BAD_USER_INPUT", "The body could not be parsed");
    }
  }
  if (form && MEDIA_FORM.test(type)) {
    const text = raw.toString("utf8");
    if (text.split("&").length > 100) throw new BodyError(400, "BAD_USER_INPUT", "The body could not be parsed");
    return { ...querystring.parse(text) };
  }
  return undefined;
}

/** Answers a body that could not be read as the app's error handler would; false for any other error. */
export function sendBodyError(res: ServerResponse, err: unknown): boolean {
  if (!(err instanceof BodyError)) return false;
  if (err.status === 413) res.setHeader("connection", "close");
  sendJson(res, err.status, { status: "failed", code: err.code, message: err.message });
  return true;
}

/**
 * POST /graphql on node:http, without Express's router in front of Apollo: the
 * request still goes through the same helmet headers, CORS, rate limiters and
 * authentication (the same middleware instances), the body limit and JSON
 * parsing of express.json(), then straight to Apollo. Express costs ~0.1 ms a
 * request, about as much as the rest of a read (bench/README.md).
 */
export function graphqlEndpoint<TContext extends object>(deps: GraphqlEndpointDeps<TContext>) {
  const limit = bytes.parse(deps.bodyLimit) ?? 100 * 1024;
  const { apollo } = deps;
  return async (req: IncomingMessage, rawRes: ServerResponse): Promise<void> => {
    const res = expressLike(req, rawRes, deps.app);
    try {
      for (const mw of deps.before) if (!(await runMiddleware(mw, req, res))) return;
      if (!deps.authenticate(req, res)) return;
      for (const mw of deps.after) if (!(await runMiddleware(mw, req, res))) return;
      let body: unknown;
      try {
        body = await parseBody(req, limit);
      } catch (err) {
        if (sendBodyError(res, err)) return;
        throw err;
      }
      const headers = new HeaderMap();
      for (const key in req.headers) {
        const value = req.headers[key];
        if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(", ") : value);
      }
      const url = req.url ?? "";
      const q = url.indexOf("?");
      const context = deps.context(req, res);
      const answer = await apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: { method: "POST", headers, search: q < 0 ? "" : url.slice(q), body },
        context: async () => context,
      });
      for (const [key, value] of answer.headers) res.setHeader(key, value);
      res.statusCode = answer.status ?? 200;
      if (answer.body.kind === "complete") {
        res.setHeader("content-length", Buffer.byteLength(answer.body.string));
        res.end(answer.body.string);
        return;
      }
      for await (const chunk of answer.body.asyncIterator) res.write(chunk);
      res.end();
    } catch (err) {
      deps.onError(err, req);
      // As the app's error handler answers: a database that did not answer (a shared rate-limit store) is a 503.
      const e = toAppError(err);
      if (!res.headersSent) sendJson(res, httpStatusOf(e.code), { status: "failed", code: e.code, message: e.message });
      else res.destroy();
    }
  };
}
