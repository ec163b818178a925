import { Migration } from "@mikro-orm/migrations";

/** Notices before charges (src/db/entities/notice.entity.ts): one row per notice, unique per subscription, kind and subject. */
export class Migration20261207090000_notices extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "notices" ("id" uuid not null default gen_random_uuid(), "kind" varchar(30) not null, "subscription_id" varchar(24) not null, "ref" varchar(80) not null, "due_at" timestamptz not null, "sent_at" timestamptz null, "event_id" bigint null, "created_at" timestamptz not null default now(), constraint "notices_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "notices" add constraint "notices_subscription_kind_ref_unique" unique ("subscription_id", "kind", "ref");`);
    this.addSql(`create index "notices_subscription_id_due_at_index" on "notices" ("subscription_id", "due_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "notices";`);
  }
}
