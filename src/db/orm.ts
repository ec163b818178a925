import type { MigrationObject } from "@mikro-orm/core";
import { Migration, Migrator } from "@mikro-orm/migrations";
import { MikroORM, Options } from "@mikro-orm/postgresql";
import type { Logger } from "pino";
import type { DatabaseTimeouts } from "../config";
import { Card, Payment, Plan, Subscription, WebhookEvent } from "./entities";
import { migrationsList } from "./migrations";
import { EventDeliveryRecord, EventRecord, WebhookEndpointRecord } from "../events/entities";

export const entities = [Card, Payment, Plan, Subscription, WebhookEvent, EventRecord, WebhookEndpointRecord, EventDeliveryRecord];

interface PgConnection {
  query(text: string, cb: (err: Error | null) => void): void;
}

/**
 * Pool options that bound every wait on the database: `statement_timeout`
 * and `lock_timeout` set on each connection as it is opened (a SET rather
 * than startup parameters, which PgBouncer refuses), and the time a caller
 * waits for a free connection (knex's acquire timeout; `pg`'s connect
 * timeout bounds opening one). pg-boss runs on this pool too. On the embedded
 * database (one PGlite session, one statement at a time in this process) only
 * the acquire timeout has an effect: nothing there waits for a lock.
 */
function boundedPool(timeouts: DatabaseTimeouts | undefined) {
  if (!timeouts) return {};
  const settings = `set statement_timeout = ${Math.trunc(timeouts.statementMs)}; set lock_timeout = ${Math.trunc(timeouts.lockMs)}`;
  return {
    pool: {
      acquireTimeoutMillis: timeouts.acquireMs,
      afterCreate(conn: PgConnection, done: (err: Error | null, conn: PgConnection) => void) {
        conn.query(settings, (err) => done(err, conn));
      },
    },
    driverOptions: { connection: { connectionTimeoutMillis: timeouts.acquireMs } },
  };
}

/**
 * A migration runs without a statement timeout: it may rewrite or index a
 * large table, which takes longer than any request should. `set local` ends
 * with the migrations' transaction. The lock timeout stays: a migration that
 * waits for a lock held by a long transaction fails the start (retried by
 * the next start) instead of queueing every request behind it.
 */
export function withoutStatementTimeout(m: MigrationObject): MigrationObject {
  const Base = m.class as unknown as new (...args: ConstructorParameters<typeof Migration>) => Migration & {
    up(): Promise<void> | void;
    down(): Promise<void> | void;
  };
  class Unbounded extends Base {
    override async up(): Promise<void> {
      if (this.isTransactional()) this.addSql("set local statement_timeout = 0");
      await super.up();
    }

    override async down(): Promise<void> {
      if (this.isTransactional()) this.addSql("set local statement_timeout = 0");
      await super.down();
    }
  }
  return { name: m.name, class: Unbounded as unknown as MigrationObject["class"] };
}

/** The MikroORM options shared by the server, the tests and the scripts. */
export function ormOptions(clientUrl: string, poolMax: number, logger?: Logger, timeouts?: DatabaseTimeouts): Options {
  const bounded = boundedPool(timeouts);
  return {
    clientUrl,
    entities,
    extensions: [Migrator],
    pool: { min: 0, max: poolMax, ...bounded.pool },
    driverOptions: bounded.driverOptions,
    // Nothing may touch the global EntityManager: every request and job forks its own.
    allowGlobalContext: false,
    debug: false,
    logger: logger ? (msg: string) => logger.debug({ orm: msg }, "orm") : undefined,
    migrations: {
      migrationsList: migrationsList.map(withoutStatementTimeout),
      transactional: true,
      allOrNothing: true,
      snapshot: false,
    },
  };
}

export async function openOrm(clientUrl: string, poolMax: number, logger?: Logger, timeouts?: DatabaseTimeouts): Promise<MikroORM> {
  return MikroORM.init(ormOptions(clientUrl, poolMax, logger, timeouts));
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
