import http from "node:http";
import https from "node:https";
import { AxiosError, AxiosHeaders, type AxiosAdapter, type AxiosResponse } from "axios";

/** Iamport's answers are small JSON envelopes: anything this large is not one. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/**
 * How long a kept-alive connection to Iamport may sit idle before this side
 * closes it (`timeout` of the agents). node's agent applies a server's
 * `Keep-Alive: timeout=N` hint (less one second) only when it is shorter than
 * this, and without an agent timeout never: an idle socket then stayed in the
 * pool until the server closed it, and a request written onto it in that
 * moment was answered with a reset (ECONNRESET, seen in the benchmark against
 * the emulator's 5 s keep-alive).
 */
export const IDLE_SOCKET_TIMEOUT_MS = 4_000;

/** Keep-alive agents for Iamport (see IDLE_SOCKET_TIMEOUT_MS). */
export function iamportAgents(maxSockets: number): { http: http.Agent; https: https.Agent } {
  const o = { keepAlive: true, maxSockets, timeout: IDLE_SOCKET_TIMEOUT_MS };
  return { http: new http.Agent(o), https: new https.Agent(o) };
}

/** Axios request config of the Iamport client: `idempotent` marks a request that may be sent twice. */
export interface IdempotentConfig {
  idempotent?: boolean;
}

/**
 * An axios adapter on node:http(s) with keep-alive agents, for the Iamport
 * client: axios still does the configuration, headers, JSON (transformRequest /
 * transformResponse) and errors, but the request itself skips axios's generic
 * http adapter (proxy lookup from the environment on every call, redirects,
 * stream and decompression plumbing), which cost ~0.25 ms of CPU a call:
 * as much as the rest of a renewal's Iamport work (bench/README.md).
 * Supports what the client uses: a method, a relative url on baseURL, a
 * string body, headers, a timeout.
 */
export function nodeHttpAdapter(agents: { http: http.Agent; https: https.Agent }): AxiosAdapter {
  return (config) => {
    const method = (config.method ?? "get").toUpperCase();
    const idempotent = method === "GET" || method === "HEAD" || (config as IdempotentConfig).idempotent === true;
    // A kept-alive socket that the server closed while idle fails the request written onto it with a reset,
    // before any answer: the request never reached the server, and one that may be sent twice is sent again
    // on a new connection. Others (a charge) are reported as they failed: their callers settle an unknown
    // outcome by asking Iamport, never by sending again.
    return send(agents, config, method).catch((err: AxiosError & { staleSocket?: boolean }) => {
      if (err.staleSocket && idempotent) return send(agents, config, method);
      throw err;
    });
  };
}

/** One attempt of a request on the agents (nodeHttpAdapter sends it at most twice). */
function send(agents: { http: http.Agent; https: https.Agent }, config: Parameters<AxiosAdapter>[0], method: string): Promise<AxiosResponse> {
  return new Promise<AxiosResponse>((resolve, reject) => {
    const base = (config.baseURL ?? "").replace(/\/+$/, "");
    const target = new URL(/^https?:\/\//i.test(config.url ?? "") ? config.url! : `${base}${config.url ?? ""}`);
    const secure = target.protocol === "https:";
    const body = config.data === undefined || config.data === null ? undefined : typeof config.data === "string" ? config.data : JSON.stringify(config.data);
    const headers = AxiosHeaders.from(config.headers).toJSON(true) as Record<string, string>;
    if (body !== undefined) headers["Content-Length"] = String(Buffer.byteLength(body));
    let settled = false;
    const fail = (err: AxiosError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    };
    const req = (secure ? https : http).request(
      {
        protocol: target.protocol,
        hostname: target.hostname.replace(/^\[|\]$/g, ""),
        port: target.port || undefined,
        path: `${target.pathname}${target.search}`,
        method,
        headers,
        agent: secure ? agents.https : agents.http,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            res.destroy();
            fail(new AxiosError(`response larger than ${MAX_RESPONSE_BYTES} bytes`, AxiosError.ERR_BAD_RESPONSE, config, req));
            return;
          }
          chunks.push(c);
        });
        res.on("error", (err: NodeJS.ErrnoException) => fail(AxiosError.from(err, err.code ?? AxiosError.ERR_NETWORK, config, req)));
        res.on("end", () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const response: AxiosResponse = {
            data: Buffer.concat(chunks).toString("utf8"),
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? "",
            headers: AxiosHeaders.from(res.headers as Record<string, string>),
            config,
            request: req,
          };
          if (config.validateStatus && !config.validateStatus(response.status)) {
            reject(new AxiosError(`Request failed with status code ${response.status}`, AxiosError.ERR_BAD_RESPONSE, config, req, response));
            return;
          }
          resolve(response);
        });
      },
    );
    // Counted from when the request has a socket: a call still queued behind the agent's maxSockets
    // was never sent, and must not be reported as a timeout (an unknown outcome) for that.
    const timeout = config.timeout ?? 0;
    let timer: NodeJS.Timeout | undefined;
    if (timeout > 0) {
      req.once("socket", () => {
        timer = setTimeout(() => {
          fail(new AxiosError(`timeout of ${timeout}ms exceeded`, AxiosError.ECONNABORTED, config, req));
          req.destroy();
        }, timeout);
      });
    }
    let answered = false;
    req.once("response", () => {
      answered = true;
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      const e = AxiosError.from(err, err.code ?? AxiosError.ERR_NETWORK, config, req) as AxiosError & { staleSocket?: boolean };
      e.staleSocket = req.reusedSocket && !answered && (err.code === "ECONNRESET" || err.code === "EPIPE");
      fail(e);
    });
    req.end(body);
  });
}
