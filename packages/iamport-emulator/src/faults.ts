import { decodePath, HTTP_METHODS, templateShape, type HttpMethod } from "./router";

/*
 * Injected failures: the next `times` matching calls misbehave.
 *  - http500:      answer a 500 envelope; the call has no effect.
 *  - timeout:      the call takes effect but its answer is held until the client
 *                  gives up (the realistic "unknown outcome").
 *  - hold:         the call takes effect and its answer is held until the control
 *                  API releases it, so a test decides when the client hears it
 *                  (and what happens meanwhile).
 *  - expire_token: the next authenticated call gets 401 and its token really expires.
 *  - drop_webhook: the next `times` webhooks are not sent, whatever route caused them.
 */

export const FAULT_MODES = ["http500", "timeout", "hold", "expire_token", "drop_webhook"] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

type FaultTarget =
  | { kind: "any" }
  | { kind: "template"; method: HttpMethod; shape: string }
  | { kind: "literal"; method: HttpMethod; path: string };

export interface Fault {
  id: number;
  route: string;
  mode: FaultMode;
  remaining: number;
  target: FaultTarget;
}

/** What the registry needs to know about a call to decide whether a fault applies. */
export interface CallInfo {
  method: HttpMethod;
  /** The decoded request path. */
  path: string;
  /** Shapes of the templates of the route the call matched. */
  shapes: string[];
}

export class FaultError extends Error {}

export interface RouteValidator {
  /** Is there an Iamport route with this method and template shape? */
  hasTemplate(method: HttpMethod, shape: string): boolean;
  /** Does a concrete path hit an Iamport route with this method? */
  hasPath(method: HttpMethod, path: string): boolean;
}

export class FaultRegistry {
  private faults: Fault[] = [];
  private nextId = 1;

  constructor(private readonly routes: RouteValidator) {}

  add(route: string | undefined, mode: FaultMode, times: number): Fault {
    const target = mode === "drop_webhook" ? ({ kind: "any" } as const) : this.parseRoute(route);
    const fault: Fault = { id: this.nextId++, route: route ?? "*", mode, remaining: times, target };
    this.faults.push(fault);
    return fault;
  }

  /** `times: 0` cancels the pending faults of that route and mode; returns how many. */
  cancel(route: string | undefined, mode: FaultMode): number {
    const target = JSON.stringify(mode === "drop_webhook" ? { kind: "any" } : this.parseRoute(route));
    const before = this.faults.length;
    this.faults = this.faults.filter((f) => f.mode !== mode || JSON.stringify(f.target) !== target);
    return before - this.faults.length;
  }

  private parseRoute(route: string | undefined): FaultTarget {
    if (route === undefined || route.trim() === "*") return { kind: "any" };
    const m = /^([A-Za-z]+)\s+(\/\S*)$/.exec(route.trim());
    const method = m?.[1].toUpperCase() as HttpMethod | undefined;
    if (!m || !method || !HTTP_METHODS.includes(method)) {
      throw new FaultError(`route must be "*" or "METHOD /path" (e.g. "POST /subscribe/payments/again"), got ${JSON.stringify(route)}`);
    }
    const path = m[2];
    if (path.startsWith("/__emulator")) throw new FaultError("faults apply to Iamport API routes, not to the control API");
    if (path.includes("{")) {
      const shape = templateShape(path);
      if (!this.routes.hasTemplate(method, shape)) throw new FaultError(`no Iamport route ${method} ${path}`);
      return { kind: "template", method, shape };
    }
    const decoded = decodePath(path);
    if (decoded === null || !this.routes.hasPath(method, path)) throw new FaultError(`no Iamport route matches ${method} ${path}`);
    return { kind: "literal", method, path: decoded.replace(/\/+$/, "") };
  }

  /** Consumes and returns the first registered fault that matches the call and `eligible`. */
  takeForCall(call: CallInfo, eligible: (mode: FaultMode) => boolean): Fault | null {
    const fault = this.faults.find(
      (f) => f.mode !== "drop_webhook" && f.remaining > 0 && eligible(f.mode) && matches(f.target, call),
    );
    return fault ? this.consume(fault) : null;
  }

  /** True when the next webhook must be dropped (consumes one drop). */
  takeWebhookDrop(): boolean {
    const fault = this.faults.find((f) => f.mode === "drop_webhook" && f.remaining > 0);
    return fault ? this.consume(fault) !== null : false;
  }

  private consume(fault: Fault): Fault {
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults = this.faults.filter((f) => f !== fault);
    return fault;
  }

  list(): Array<{ id: number; route: string; mode: FaultMode; remaining: number }> {
    return this.faults.map(({ id, route, mode, remaining }) => ({ id, route, mode, remaining }));
  }

  clear(): void {
    this.faults = [];
  }
}

function matches(target: FaultTarget, call: CallInfo): boolean {
  switch (target.kind) {
    case "any":
      return true;
    case "template":
      return target.method === call.method && call.shapes.includes(target.shape);
    case "literal":
      return target.method === call.method && target.path === call.path.replace(/\/+$/, "");
  }
}
