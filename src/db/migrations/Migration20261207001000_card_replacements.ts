import { Migration } from "@mikro-orm/migrations";

/**
 * Replacing a customer's active card is an explicit act (registerCard with
 * replace: true, or replace=true on the REST form) and is recorded on the card:
 * when it last happened and how many times.
 */
export class Migration20261207001000_card_replacements extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "cards" add column "replaced_at" timestamptz null, add column "replacements" int not null default 0;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "cards" drop column "replaced_at", drop column "replacements";`);
  }
}
