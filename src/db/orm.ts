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

/** Applies committed migrations; returns the names applied now. */
export async function migrate(orm: MikroORM): Promise<string[]> {
  const applied = await orm.getMigrator().up();
  return applied.map((m) => m.name);
}

/** True when every committed migration has been applied (readiness). */
export async function migrationsPending(orm: MikroORM): Promise<number> {
  return (await orm.getMigrator().getPendingMigrations()).length;
}
