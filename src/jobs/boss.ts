import type { MikroORM } from "@mikro-orm/postgresql";
import PgBoss from "pg-boss";
import type { Logger } from "pino";

/**
 * pg-boss's database adapter over the ORM's own pool: one driver and, on the
 * embedded database, the single connection it allows.
 */
export function ormDb(orm: MikroORM): PgBoss.Db {
  const knex = orm.em.getConnection().getKnex();
  return {
    async executeSql(text: string, values: unknown[]) {
      const client = knex.client as {
        acquireConnection(): Promise<{ query(t: string, v: unknown[]): Promise<{ rows: unknown[] }> }>;
        releaseConnection(c: unknown): Promise<void>;
      };
      const conn = await client.acquireConnection();
      try {
        return await conn.query(text, values);
      } finally {
        await client.releaseConnection(conn);
      }
    },
  };
}

/**
 * The process's pg-boss on the ORM's pool (schema pgboss): the
 * reconciliation queue. Every process works it, so several processes share
 * the work.
 */
export async function startBoss(orm: MikroORM, logger: Logger): Promise<PgBoss> {
  const boss = new PgBoss({ db: ormDb(orm), schema: "pgboss", supervise: true, schedule: false, migrate: true });
  boss.on("error", (err) => logger.warn({ err: err.message }, "pg-boss error"));
  await boss.start();
  return boss;
}
