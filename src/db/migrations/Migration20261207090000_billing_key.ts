import { Migration } from "@mikro-orm/migrations";

/**
 * PortOne V2 issues the billing key itself (V1's key is the merchant's
 * customer_uid): the card keeps the key V2 issued, unique while set.
 */
export class Migration20261207090000_billing_key extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "cards" add column "billing_key" varchar(200) null;`);
    this.addSql(`create unique index "cards_billing_key_unique" on "cards" ("billing_key");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "cards_billing_key_unique";`);
    this.addSql(`alter table "cards" drop column "billing_key";`);
  }
}
