import axios, { AxiosInstance } from "axios";

/**
 * Makes an axios instance fail with a plain Error (what was asked, the
 * message, the HTTP status or error code) instead of an AxiosError.
 *
 * A test's failure travels from jest's worker to its parent as JSON; an
 * AxiosError holds the request and its socket, a circular structure, so the
 * worker crashes ("Converting circular structure to JSON") instead of
 * reporting the failure. Calls that give up (a timeout on a loaded machine)
 * are the usual source.
 */
export function plainErrors<T extends AxiosInstance>(instance: T): T {
  instance.interceptors.response.use(undefined, (err: unknown) => Promise.reject(plainError(err)));
  return instance;
}

/** The same plain Error for one call's failure (axios used without an instance). */
export function plainError(err: unknown): unknown {
  if (!axios.isAxiosError(err)) return err;
  const c = err.config;
  const what = c ? `${(c.method ?? "get").toUpperCase()} ${c.baseURL && !/^https?:/.test(c.url ?? "") ? c.baseURL : ""}${c.url ?? ""}` : "HTTP call";
  const status = err.response ? ` (HTTP ${err.response.status})` : err.code ? ` (${err.code})` : "";
  return Object.assign(new Error(`${what}: ${err.message}${status}`), { code: err.code, status: err.response?.status });
}
