import { Router } from "express";
import type { AppDeps } from "../app";
import { migrationsPending } from "../db/orm";

/** Liveness (the process answers) and readiness (database, migrations, Iamport token). */
export function healthRoutes(deps: Pick<AppDeps, "orm" | "iamport" | "logger">): Router {
  const r = Router();
  r.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  r.get("/readyz", async (req, res) => {
    const checks: Record<string, string> = {};
    let ready = true;
    try {
      await req.ctx.em.getConnection().execute("select 1");
      checks.database = "ok";
      const pending = await migrationsPending(deps.orm);
      checks.migrations = pending === 0 ? "ok" : `${pending} pending`;
      if (pending > 0) ready = false;
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message }, "readiness: database unreachable");
      checks.database = "unreachable";
      ready = false;
    }
    try {
      await deps.iamport.ensureToken();
      checks.iamport = "ok";
    } catch (err) {
      checks.iamport = (err as Error).name;
      ready = false;
    }
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready", checks });
  });
  return r;
}
