import { Migration } from "@mikro-orm/migrations";

/**
 * Idempotency keys of /graphql mutations (src/db/idempotency.ts), and the two
 * keys that keep startSubscription from making a subscription twice:
 *  - at most one live (INCOMPLETE, ACTIVE, PAST_DUE) subscription of a name per
 *    customer, unless it was started with allowDuplicate;
 *  - one subscription per request_ref (derived from the Idempotency-Key), so
 *    the re-run of a request whose first attempt ended in an unknown outcome
 *    finds the subscription that attempt created.
 * Live duplicates made before the rule existed keep running: all but the
 * oldest of each name are marked allow_duplicate so the index can be built.
 */
export class Migration20261207004000_idempotency extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "idempotency_keys" ("scope" varchar(120) not null, "key" varchar(255) not null, "request_hash" varchar(64) not null, "state" text check ("state" in ('in_progress', 'done')) not null, "owner" varchar(36) null, "status" int null, "body" text null, "created_at" timestamptz not null, "claimed_at" timestamptz not null, "expires_at" timestamptz not null, constraint "idempotency_keys_pkey" primary key ("scope", "key"));`,
    );
    this.addSql(`create index "idempotency_keys_expires_at_index" on "idempotency_keys" ("expires_at");`);

    this.addSql(`alter table "subscriptions" add column "allow_duplicate" boolean not null default false, add column "request_ref" varchar(40) null;`);
    this.addSql(
      `update "subscriptions" s set "allow_duplicate" = true
        where s."status" in ('INCOMPLETE', 'ACTIVE', 'PAST_DUE')
          and exists (select 1 from "subscriptions" o
                       where o."customer_uid" = s."customer_uid" and o."name" = s."name"
                         and o."status" in ('INCOMPLETE', 'ACTIVE', 'PAST_DUE')
                         and (o."created_at", o."id") < (s."created_at", s."id"));`,
    );
    this.addSql(
      `create unique index "subscriptions_live_name_unique" on "subscriptions" ("customer_uid", "name") where "status" in ('INCOMPLETE', 'ACTIVE', 'PAST_DUE') and not "allow_duplicate";`,
    );
    this.addSql(`alter table "subscriptions" add constraint "subscriptions_request_ref_unique" unique ("request_ref");`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "subscriptions" drop constraint if exists "subscriptions_request_ref_unique";`);
    this.addSql(`drop index if exists "subscriptions_live_name_unique";`);
    this.addSql(`alter table "subscriptions" drop column if exists "request_ref", drop column if exists "allow_duplicate";`);
    this.addSql(`drop table if exists "idempotency_keys";`);
  }
}
