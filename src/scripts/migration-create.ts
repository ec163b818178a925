import "reflect-metadata";
import path from "node:path";
import { MikroORM } from "@mikro-orm/postgresql";
import { startEmbeddedDatabase } from "../db/embedded";
import { ormOptions } from "../db/orm";

/**
 * `npm run migration:create [name]`: applies the committed migrations to a
 * scratch embedded database, diffs it against the entities and writes the
 * difference as a new TypeScript migration into src/db/migrations. Register
 * the new class in src/db/migrations/index.ts.
 */
async function main(): Promise<void> {
  const db = await startEmbeddedDatabase({});
  const base = ormOptions(db.url, 1);
  const orm = await MikroORM.init({
    ...base,
    migrations: { ...base.migrations, path: path.resolve(__dirname, "../../src/db/migrations"), emit: "ts" },
  });
  try {
    await orm.getMigrator().up();
    const result = await orm.getMigrator().createMigration(undefined, false, false, process.argv[2]);
    if (result.diff.up.length === 0) console.log("No changes: the entities match the migrations.");
    else console.log(`Wrote ${result.fileName}; add it to src/db/migrations/index.ts.`);
  } finally {
    await orm.close(true);
    await db.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
