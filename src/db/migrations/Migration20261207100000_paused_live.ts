import { Migration } from "@mikro-orm/migrations";

/**
 * PAUSED is live: a paused subscription resumes and charges again, so it
 * keeps its name for the customer like the other live statuses. A paused
 * subscription that already shares its name with another live one (started
 * while PAUSED was not counted) is marked allow_duplicate, which is how the
 * two were let coexist, so the index can be built over the rows as they are.
 */
export class Migration20261207100000_paused_live extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `update "subscriptions" p set "allow_duplicate" = true where p."status" = 'PAUSED' and not p."allow_duplicate" and exists (` +
        `select 1 from "subscriptions" o where o."customer_uid" = p."customer_uid" and o."name" = p."name" and o."id" <> p."id" ` +
        `and o."status" in ('INCOMPLETE', 'TRIALING', 'ACTIVE', 'PAST_DUE', 'PAUSED') and not o."allow_duplicate");`,
    );
    this.addSql(`drop index if exists "subscriptions_live_name_unique";`);
    this.addSql(
      `create unique index "subscriptions_live_name_unique" on "subscriptions" ("customer_uid", "name") where "status" in ('INCOMPLETE', 'TRIALING', 'ACTIVE', 'PAST_DUE', 'PAUSED') and not "allow_duplicate";`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "subscriptions_live_name_unique";`);
    this.addSql(
      `create unique index "subscriptions_live_name_unique" on "subscriptions" ("customer_uid", "name") where "status" in ('INCOMPLETE', 'TRIALING', 'ACTIVE', 'PAST_DUE') and not "allow_duplicate";`,
    );
  }
}
