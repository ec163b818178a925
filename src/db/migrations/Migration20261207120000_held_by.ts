import { Migration } from "@mikro-orm/migrations";

/**
 * A charge that `npm run migrate:v2` moved from Iamport V1 to PortOne V2 is
 * marked held by V2, so a server still on V1 in migration mode asks V2 about it.
 */
export class Migration20261207120000_held_by extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "payments" add column "held_by" varchar(2) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "payments" drop column "held_by";`);
  }
}
