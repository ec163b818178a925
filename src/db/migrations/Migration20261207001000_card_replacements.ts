import { Migration } from "@mikro-orm/migrations";

/**
 * Replacing a customer's active card is an explicit act (registerCard with
 * replace: true, or replace=true on the REST form) and is recorded on the card:
 * when it last happened and how many times. card_claims holds the one change
 * to a customer's billing key in progress (src/db/repositories/card-claims.ts).
 */
export class Migration20261207001000_card_replacements extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "cards" add column "replaced_at" timestamptz null, add column "replacements" int not null default 0;`);
    this.addSql(`create table "card_claims" ("customer_uid" varchar(80) not null primary key, "claimed_until" timestamptz not null);`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table "card_claims";`);
    this.addSql(`alter table "cards" drop column "replaced_at", drop column "replacements";`);
  }
}
