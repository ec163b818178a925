import type { IncomingMessage, ServerResponse } from "node:http";
import querystring from "node:querystring";
import type { ApiResult } from "./routes/iamport";

/** One Iamport API call, as the emulator's handler reads it. */
export interface ApiCall {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  query: unknown;
  body: unknown;
}

/** What express.json() parses (its type check, with the only charset it reads). */
const JSON_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;
/** The body limit of the emulator's Express parsers. */
const LIMIT = 50 * 1024 * 1024;

/**
 * Iamport API calls with a JSON body or none, served from node:http without
 * Express's router and body parsers in front. In a renewal burst the emulator
 * shares the machine's two cores with the server under test and PostgreSQL, and
 * Express's machinery was most of its CPU (bench/README.md); Iamport's own CPU
 * is not on a merchant's machine. The body is read as express.json() reads it
 * (strict: an object or an array; an empty body is {}), the query as Express 5's
 * "simple" parser does, and a malformed or oversized body is answered as the
 * emulator's Express error handler answers it. Everything else (the control
 * API, forms, compressed bodies, other charsets, a length with another content
 * type, absolute-form URLs, URLs with a fragment) returns false, for Express.
 */
export function fastApi(
  req: IncomingMessage,
  res: ServerResponse,
  serve: (call: ApiCall, res: ServerResponse) => Promise<void>,
  send: (res: ServerResponse, result: ApiResult) => void,
  onError: (err: unknown, call: ApiCall) => void,
): boolean {
  const url = req.url ?? "";
  // Express matches its mount paths case-insensitively (/__EMULATOR/clock is the control API too),
  // and its URL parser drops a fragment.
  if (!url.startsWith("/") || url.slice(0, 11).toLowerCase() === "/__emulator" || url.includes("#")) return false;
  const headers = req.headers;
  if (headers["content-encoding"] !== undefined) return false;
  // Express's parsers run (and check the charset) whenever a length is given, even 0.
  const hasBody = headers["transfer-encoding"] !== undefined || headers["content-length"] !== undefined;
  if (hasBody && !JSON_TYPE.test(headers["content-type"] ?? "")) return false;

  const q = url.indexOf("?");
  const call: ApiCall = {
    method: req.method ?? "GET",
    path: q < 0 ? url : url.slice(0, q),
    headers,
    query: querystring.parse(q < 0 ? "" : url.slice(q + 1)),
    body: undefined,
  };
  const run = () =>
    serve(call, res).catch((err: unknown) => {
      onError(err, call);
      send(res, { status: 500, body: { code: -1, message: "Internal Server Error", response: null } });
    });
  if (!hasBody) {
    req.resume();
    void run();
    return true;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (c: Buffer) => {
    size += c.length;
    if (size <= LIMIT) chunks.push(c);
  });
  req.on("error", () => res.destroy());
  req.on("end", () => {
    if (size > LIMIT) {
      send(res, { status: 413, body: { code: -1, message: "request entity too large", response: null } });
      return;
    }
    // Decoded as body-parser decodes: a byte-order mark is not part of the JSON.
    let text = (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString("utf8");
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.length === 0) call.body = {};
    else {
      const first = /^[ \t\n\r]*(.)/.exec(text)?.[1];
      try {
        if (first !== "{" && first !== "[") throw new SyntaxError("not an object or array");
        call.body = JSON.parse(text);
      } catch {
        send(res, { status: 400, body: { code: -1, message: "요청 본문을 해석할 수 없습니다. (malformed JSON)", response: null } });
        return;
      }
    }
    void run();
  });
  return true;
}
