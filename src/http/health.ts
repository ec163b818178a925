import type { RouteHandlerMethod } from "fastify";
import type { AppDeps } from "../app";
import { migrationsPending } from "../db/orm";
import { BoundedProbe, DATABASE_PROBE_MS } from "../db/probe";

/**
 * Liveness (the process answers; never touches the database) and readiness
 * (database, migrations, Iamport token). The database probe takes a
 * connection from the server's own pool, so a pool exhausted by waiting
 * statements makes the server not ready too.
 */
export function healthHandlers(deps: Pick<AppDeps, "orm" | "provider" | "logger">): { healthz: RouteHandlerMethod; readyz: RouteHandlerMethod } {
  const database = new BoundedProbe(async () => {
    await deps.orm.em.fork().getConnection().execute("select 1");
    return migrationsPending(deps.orm);
  }, DATABASE_PROBE_MS);
  const healthz: RouteHandlerMethod = async () => ({ status: "ok" });
  const readyz: RouteHandlerMethod = async (_req, reply) => {
    const checks: Record<string, string> = {};
    let ready = true;
    const [db, iamport] = await Promise.all([
      database.ask(),
      deps.provider.ensureToken().then(
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
    // Named after the provider: V1's Iamport token, or PortOne V2's API secret.
    checks[deps.provider.name === "v2" ? "portone" : "iamport"] = iamport;
    if (iamport !== "ok") ready = false;
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not ready", checks });
  };
  return { healthz, readyz };
}
