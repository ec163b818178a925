import { Migration } from "@mikro-orm/migrations";

/**
 * Changing subscriptions (issue 24): the tax-free and VAT parts of payments
 * and subscriptions (sent to Iamport as `tax_free` and `vat_amount`), what a
 * subscription refunded on cancellation, and the refund a cancellation
 * claimed (sent to Iamport after its commit).
 */
export class Migration20261207090000_subscription_changes extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "payments" add column "tax_free_amount" int not null default 0, add column "vat_amount" int null;`);
    this.addSql(
      `alter table "subscriptions" add column "tax_free_amount" int not null default 0, add column "vat_amount" int null, ` +
        `add column "refunded_amount" int not null default 0, add column "refund_claim" jsonb null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(
      `alter table "subscriptions" drop column if exists "refund_claim", drop column if exists "refunded_amount", drop column if exists "vat_amount", drop column if exists "tax_free_amount";`,
    );
    this.addSql(`alter table "payments" drop column if exists "vat_amount", drop column if exists "tax_free_amount";`);
  }
}
