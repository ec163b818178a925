import { Migration } from "@mikro-orm/migrations";

/**
 * Changing subscriptions (issue 24): the tax-free and VAT parts of payments
 * and subscriptions (sent to Iamport as `tax_free` and `vat_amount`), what a
 * subscription refunded on cancellation, and the refund a cancellation
 * claimed (sent to Iamport after its commit).
 */
export class Migration20261207094000_subscription_changes extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "payments" add column "tax_free_amount" int not null default 0, add column "vat_amount" int null;`);
    this.addSql(`alter table "plans" add column "tax_free_amount" int not null default 0, add column "vat_amount" int null;`);
    this.addSql(
      `alter table "subscriptions" add column "tax_free_amount" int not null default 0, add column "vat_amount" int null, ` +
        `add column "refunded_amount" int not null default 0, add column "refund_claim" jsonb null, ` +
        `add column "anchor_period" int not null default 1, add column "paused_at" timestamptz null, add column "resumes_at" timestamptz null;`,
    );
    // PAUSED joins the statuses (the check MikroORM generates for the enum).
    this.addSql(`alter table "subscriptions" drop constraint if exists "subscriptions_status_check";`);
    this.addSql(
      `alter table "subscriptions" add constraint "subscriptions_status_check" check ("status" in ('INCOMPLETE', 'TRIALING', 'ACTIVE', 'PAST_DUE', 'UNPAID', 'CANCELED', 'PAUSED'));`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "subscriptions" drop constraint if exists "subscriptions_status_check";`);
    this.addSql(
      `alter table "subscriptions" add constraint "subscriptions_status_check" check ("status" in ('INCOMPLETE', 'TRIALING', 'ACTIVE', 'PAST_DUE', 'UNPAID', 'CANCELED'));`,
    );
    this.addSql(
      `alter table "subscriptions" drop column if exists "resumes_at", drop column if exists "paused_at", drop column if exists "anchor_period", drop column if exists "refund_claim", drop column if exists "refunded_amount", drop column if exists "vat_amount", drop column if exists "tax_free_amount";`,
    );
    this.addSql(`alter table "plans" drop column if exists "vat_amount", drop column if exists "tax_free_amount";`);
    this.addSql(`alter table "payments" drop column if exists "vat_amount", drop column if exists "tax_free_amount";`);
  }
}
