import { MikroORM, Options } from "@mikro-orm/postgresql";
import { Migrator } from "@mikro-orm/migrations";
import type { Logger } from "pino";
import { Card, Payment, Subscription, WebhookEvent } from "./entities";
import { migrationsList } from "./migrations";

export const entities = [Card, Payment, Subscription, WebhookEvent];

/** The MikroORM options shared by the server, the tests and the scripts. */
export function ormOptions(clientUrl: string, poolMax: number, logger?: Logger): Options {
  return {
    clientUrl,
    entities,
    extensions: [Migrator],
    pool: { min: 0, max: poolMax },
    // Nothing may touch the global EntityManager: every request and job forks its own.
    allowGlobalContext: false,
    debug: false,
    logger: logger ? (msg: string) => logger.debug({ orm: msg }, "orm") : undefined,
    migrations: {
      migrationsList,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
    },
  };
}

export async function openOrm(clientUrl: string, poolMax: number, logger?: Logger): Promise<MikroORM> {
  return MikroORM.init(ormOptions(clientUrl, poolMax, logger));
}

/** The oldest PostgreSQL this server runs on (README, Production), as `server_version_num`. */
const MIN_POSTGRES_VERSION_NUM = 130000;

/**
 * Why a database of this `server_version_num` cannot be used, or null. The
 * renewal batches set `plan_cache_mode` (PostgreSQL 12 and later) with their
 * BEGIN: on an older server every batch would fail, and with it every
 * renewal webhook, so the server refuses to start instead.
 */
export function unsupportedPostgres(versionNum: string): string | null {
  const v = Number(versionNum);
  if (Number.isInteger(v) && v >= MIN_POSTGRES_VERSION_NUM) return null;
  return `PostgreSQL 13 or later is required; the database at DATABASE_URL reports server_version_num ${JSON.stringify(versionNum)}`;
}

/** Throws when the database is older than this server supports. */
export async function checkPostgresVersion(orm: MikroORM): Promise<void> {
  const rows = (await orm.em.getConnection().execute("show server_version_num")) as { server_version_num: string }[];
  const problem = unsupportedPostgres(String(rows[0]?.server_version_num));
  if (problem) throw new Error(problem);
}

/** Applies committed migrations; returns the names applied now. */
export async function migrate(orm: MikroORM): Promise<string[]> {
  const applied = await orm.getMigrator().up();
  return applied.map((m) => m.name);
}

/** True when every committed migration has been applied (readiness). */
export async function migrationsPending(orm: MikroORM): Promise<number> {
  return (await orm.getMigrator().getPendingMigrations()).length;
}
