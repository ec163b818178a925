import { Migration } from "@mikro-orm/migrations";

/** Shared rate-limit counters (RATE_LIMIT_STORE=postgres). Unlogged: losing them in a crash is harmless. */
export class Migration20261121140000_rate_limits extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create unlogged table if not exists "rate_limits" ("key" varchar(200) primary key, "hits" int not null, "reset_at" timestamptz not null);`);
    this.addSql(`create index if not exists "rate_limits_reset_at_index" on "rate_limits" ("reset_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "rate_limits";`);
  }
}
