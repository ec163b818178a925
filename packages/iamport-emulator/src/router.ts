/*
 * A tiny router over the spec's own path templates (`/payments/{imp_uid}`).
 * The HTTP framework's routing would work too, but keeping the templates as written in the
 * spec lets faults name a route exactly as the spec does, and lets one table
 * answer "which route is this call?" for both dispatching and fault matching.
 */

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";
export const HTTP_METHODS: readonly HttpMethod[] = ["GET", "POST", "PUT", "DELETE"];

export interface CompiledTemplate {
  template: string;
  /** The template with parameter names erased, so `{a}` and `{b}` compare equal. */
  shape: string;
  regex: RegExp;
  names: string[];
}

export function compileTemplate(template: string): CompiledTemplate {
  const names: string[] = [];
  const pattern = template
    .split("/")
    .map((segment) => {
      const m = /^\{([^}]+)\}$/.exec(segment);
      if (m) {
        names.push(m[1]);
        return "([^/]+)";
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("/");
  return { template, shape: templateShape(template), regex: new RegExp(`^${pattern}/?$`), names };
}

export function templateShape(template: string): string {
  return template.replace(/\{[^}]*\}/g, "{}").replace(/\/+$/, "");
}

/** Decodes each path segment; null when the path is not valid percent-encoding. */
export function decodePath(path: string): string | null {
  try {
    return path
      .split("/")
      .map((s) => decodeURIComponent(s))
      .join("/");
  } catch {
    return null;
  }
}

export interface RouteMatch<R> {
  route: R;
  template: CompiledTemplate;
  params: Record<string, string>;
}

export class RouteTable<R extends { method: HttpMethod; templates: CompiledTemplate[] }> {
  constructor(readonly routes: readonly R[]) {}

  /** The route for a call; `methodMismatch` tells a known path called with the wrong method. */
  match(method: string, rawPath: string): { match: RouteMatch<R> | null; methodMismatch: boolean; badEncoding: boolean } {
    let methodMismatch = false;
    for (const route of this.routes) {
      for (const t of route.templates) {
        const m = t.regex.exec(rawPath);
        if (!m) continue;
        if (route.method !== method) {
          methodMismatch = true;
          continue;
        }
        const params: Record<string, string> = {};
        try {
          t.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1])));
        } catch {
          return { match: null, methodMismatch: false, badEncoding: true };
        }
        return { match: { route, template: t, params }, methodMismatch: false, badEncoding: false };
      }
    }
    return { match: null, methodMismatch, badEncoding: false };
  }
}
