import { Migration } from "@mikro-orm/migrations";

/** Plans (src/db/entities/plan.entity.ts), and the plan a subscription was started from. */
export class Migration20261207080000_plans extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "plans" ("id" varchar(24) not null, "code" varchar(64) not null, "name" varchar(200) not null, "amount" int not null, "interval" text check ("interval" in ('DAY', 'WEEK', 'MONTH', 'YEAR')) not null, "interval_count" int not null default 1, "trial_days" int not null default 0, "active" boolean not null default true, "created_at" timestamptz not null, "updated_at" timestamptz not null, constraint "plans_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "plans" add constraint "plans_code_unique" unique ("code");`);
    this.addSql(`alter table "subscriptions" add column "plan_code" varchar(64) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "subscriptions" drop column if exists "plan_code";`);
    this.addSql(`drop table if exists "plans";`);
  }
}
