import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { FaultRegistry } from "../faults";
import { decodePath, type HttpMethod } from "../router";
import { V2Error, type V2Api, type V2Result } from "./api";

/*
 * The V2 API's HTTP server, on a port of its own: V2's paths overlap V1's
 * (/payments/{id}), and @portone/server-sdk takes an origin as its baseUrl.
 * Bodies are read as JSON whatever their content type, since the SDK sends
 * its JSON without one.
 */

export interface V2ServerOptions {
  port: number;
  host: string;
  faults: FaultRegistry;
  /** Called after every call that may change the records (all but GET), for the state file. */
  onChange?: () => void;
  /** How long a "timeout" fault holds the answer before destroying the socket; default 120000. */
  timeoutHoldMs?: number;
  logger: { info(...a: unknown[]): void; error(...a: unknown[]): void; debug?(...a: unknown[]): void };
}

const BODY_LIMIT = 10 * 1024 * 1024;

export interface RunningV2Server {
  url: string;
  port: number;
  close(): Promise<void>;
}

function error(status: number, type: string, message: string): V2Result {
  return { status, body: { type, message } };
}

export async function startV2Server(api: V2Api, opts: V2ServerOptions): Promise<RunningV2Server> {
  const logCall = (...a: unknown[]) => (opts.logger.debug ? opts.logger.debug(...a) : opts.logger.info(...a));

  /** A call's answer; `held`: a "timeout" fault, whose call took effect and whose answer never comes. */
  const serve = (method: string, rawUrl: string, headers: http.IncomingHttpHeaders, text: string): V2Result & { held?: boolean } => {
    const url = new URL(rawUrl, "http://emulator");
    const path = decodePath(url.pathname);
    if (path === null) return error(400, "INVALID_REQUEST", "malformed path encoding");
    let matched: { route: V2Api["routes"][number]; params: Record<string, string> } | null = null;
    let pathKnown = false;
    for (const route of api.routes) {
      const m = route.template.regex.exec(url.pathname);
      if (!m) continue;
      pathKnown = true;
      if (route.method !== method) continue;
      const params: Record<string, string> = {};
      route.template.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])));
      matched = { route, params };
      break;
    }
    if (!matched) return pathKnown ? error(405, "INVALID_REQUEST", `Method Not Allowed: ${method} ${url.pathname}`) : error(404, "NOT_FOUND", `Not Found: ${method} ${url.pathname}`);

    const auth = headers.authorization ?? "";
    if (matched.route.auth && !api.isAuthorized(auth)) {
      return error(401, "UNAUTHORIZED", auth ? "인증 정보가 올바르지 않거나 만료되었습니다." : "Authorization 헤더가 필요합니다.");
    }
    const fault = opts.faults.takeForCall({ method: method as HttpMethod, path, shapes: [matched.route.template.shape] }, (mode) => mode === "http500" || mode === "timeout");
    if (fault) opts.logger.info({ fault: fault.mode, method, path }, "injecting fault (V2)");
    if (fault?.mode === "http500") return error(500, "INTERNAL", "Internal Server Error (emulated fault)");
    const result = handle(matched.route, matched.params, url.searchParams, text);
    return fault?.mode === "timeout" ? { ...result, held: true } : result;
  };

  const handle = (route: V2Api["routes"][number], params: Record<string, string>, query: URLSearchParams, text: string): V2Result => {
    let body: Record<string, unknown> = {};
    const trimmed = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    if (trimmed.trim() !== "") {
      try {
        const parsed: unknown = JSON.parse(trimmed);
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return error(400, "INVALID_REQUEST", "the body must be a JSON object");
        body = parsed as Record<string, unknown>;
      } catch {
        return error(400, "INVALID_REQUEST", "malformed JSON");
      }
    }
    try {
      return route.handle({ params, query, body });
    } catch (e) {
      if (e instanceof V2Error) return { status: e.status, body: { type: e.type, message: e.message, ...e.extra } };
      opts.logger.error({ err: e, method: route.method, route: route.template.shape }, "emulator internal error (V2)");
      return error(500, "INTERNAL", "Internal Server Error");
    }
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= BODY_LIMIT) chunks.push(c);
    });
    req.on("end", () => {
      const result =
        size > BODY_LIMIT ? error(413, "INVALID_REQUEST", "request entity too large") : serve((req.method ?? "GET").toUpperCase(), req.url ?? "/", req.headers, Buffer.concat(chunks).toString("utf8"));
      if ("held" in result && result.held) {
        // The call took effect; its answer never comes. The socket is destroyed after
        // timeoutHoldMs unless the client gave up first (as V1's "timeout" fault).
        if (req.method !== "GET") opts.onChange?.();
        const timer = setTimeout(() => res.socket?.destroy(), opts.timeoutHoldMs ?? 120_000);
        res.on("close", () => clearTimeout(timer));
        return;
      }
      const out = JSON.stringify(result.body);
      logCall({ method: req.method, path: (req.url ?? "").split("?")[0], status: result.status }, "portone v2 call");
      res.statusCode = result.status;
      res.setHeader("Content-Type", "application/json; charset=utf-8");
      res.setHeader("Content-Length", Buffer.byteLength(out));
      res.end(out);
      if (req.method !== "GET") opts.onChange?.();
    });
  });
  const sockets = new Set<Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = opts.host === "0.0.0.0" || opts.host === "::" ? "127.0.0.1" : opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  const url = `http://${urlHost}:${port}`;
  return {
    url,
    port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
