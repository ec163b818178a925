import { Migration } from "@mikro-orm/migrations";

/**
 * A price change may carry a plan (a merchant's upgrade by
 * changeSubscriptionPlan, applied once the customer consents), and a plan
 * change's difference charge names the subscription it adjusts, so that it
 * is listed with the subscription's payments.
 */
export class Migration20261207110000_plan_changes extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "price_changes" add column "plan_code" varchar(64) null;`);
    this.addSql(`alter table "payments" add column "adjusts_subscription_id" varchar(24) null;`);
    this.addSql(`create index "payments_adjusts_subscription_id_index" on "payments" ("adjusts_subscription_id", "id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "payments_adjusts_subscription_id_index";`);
    this.addSql(`alter table "payments" drop column if exists "adjusts_subscription_id";`);
    this.addSql(`alter table "price_changes" drop column if exists "plan_code";`);
  }
}
