import type { Ctx } from "../billing/context";

declare global {
  namespace Express {
    interface Request {
      /** Forked EntityManager, request id and request logger (set by the app's first middleware). */
      ctx: Ctx;
    }
  }
}

export {};
