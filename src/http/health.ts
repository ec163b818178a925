import { Router } from "express";
import type { AppDeps } from "../app";
import { migrationsPending } from "../db/orm";
import { BoundedProbe, DATABASE_PROBE_MS } from "../db/probe";

/**
 * Liveness (the process answers; never touches the database) and readiness
 * (database, migrations, Iamport token). The database probe takes a
 * connection from the server's own pool, so a pool exhausted by waiting
 * statements makes the server not ready too.
 */
export function healthRoutes(deps: Pick<AppDeps, "orm" | "iamport" | "logger">): Router {
  const r = Router();
  const database = new BoundedProbe(async () => {
    await deps.orm.em.fork().getConnection().execute("select 1");
    return migrationsPending(deps.orm);
  }, DATABASE_PROBE_MS);
  r.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  r.get("/readyz", async (_req, res) => {
    const checks: Record<string, string> = {};
    let ready = true;
    const [db, iamport] = await Promise.all([
      database.ask(),
      deps.iamport.ensureToken().then(
        () => "ok",
        (err: Error) => err.name,
      ),
    ]);
    if (db.ok) {
      checks.database = "ok";
      checks.migrations = db.value === 0 ? "ok" : `${db.value} pending`;
      if (db.value > 0) ready = false;
    } else {
      checks.database = db.reason === "timeout" ? "timeout" : "unreachable";
      deps.logger.warn({ err: db.reason === "error" ? db.error.message : db.reason }, "readiness: database not answering");
      ready = false;
    }
    checks.iamport = iamport;
    if (iamport !== "ok") ready = false;
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready", checks });
  });
  return r;
}
