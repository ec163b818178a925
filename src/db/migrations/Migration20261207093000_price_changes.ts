import { Migration } from "@mikro-orm/migrations";

/** Price changes (src/db/entities/price-change.entity.ts): at most one in flight per subscription. */
export class Migration20261207093000_price_changes extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "price_changes" ("id" varchar(24) not null, "subscription_id" varchar(24) not null, "old_amount" int not null, "new_amount" int not null, "effective_at" timestamptz not null, "effective_period" int not null, "status" text check ("status" in ('PENDING', 'ACCEPTED', 'DECLINED', 'EXPIRED', 'CANCELED')) not null default 'PENDING', "requested_at" timestamptz not null, "responded_at" timestamptz null, "responded_by" varchar(20) null, "applied_at" timestamptz null, "created_at" timestamptz not null, constraint "price_changes_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "price_changes_subscription_id_index" on "price_changes" ("subscription_id", "id");`);
    this.addSql(
      `create unique index "price_changes_open_unique" on "price_changes" ("subscription_id") where "status" = 'PENDING' or ("status" = 'ACCEPTED' and "applied_at" is null);`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "price_changes";`);
  }
}
