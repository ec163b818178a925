import type { Ctx } from "../billing/context";

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Forked EntityManager, request id and request logger (set by the app's first middleware). */
      ctx: Ctx;
    }
  }
}

export {};
