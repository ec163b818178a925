import { Migration } from "@mikro-orm/migrations";

/**
 * The event ledger (src/events): events written in the transaction of their
 * change, the merchant's webhook endpoints, and one delivery row per event
 * and endpoint that the delivery queue works.
 */
export class Migration20261207010000_events extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "events" ("id" bigserial primary key, "type" varchar(60) not null, "customer_uid" varchar(80) null, "subscription_id" varchar(24) null, "merchant_uid" varchar(80) null, "data" jsonb not null, "created_at" timestamptz not null default now());`,
    );
    this.addSql(`create index "events_customer_uid_id_index" on "events" ("customer_uid", "id");`);
    this.addSql(`create index "events_subscription_id_id_index" on "events" ("subscription_id", "id");`);
    this.addSql(`create index "events_type_id_index" on "events" ("type", "id");`);
    this.addSql(
      `create table "webhook_endpoints" ("id" uuid primary key, "url" text not null, "event_types" text[] not null default '{}', "enabled" boolean not null default true, "secret" varchar(100) not null, "previous_secret" varchar(100) null, "previous_secret_expires_at" timestamptz null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now());`,
    );
    this.addSql(
      `create table "event_deliveries" ("id" uuid primary key default gen_random_uuid(), "event_id" bigint not null, "endpoint_id" uuid not null, "order_key" varchar(80) null, "status" text check ("status" in ('PENDING', 'DELIVERED', 'FAILED')) not null default 'PENDING', "attempts" int not null default 0, "round_start" int not null default 0, "next_attempt_at" timestamptz null, "enqueued_at" timestamptz null, "leased_until" timestamptz null, "last_status_code" int null, "last_error" text null, "delivered_at" timestamptz null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), constraint "event_deliveries_event_endpoint_unique" unique ("event_id", "endpoint_id"));`,
    );
    this.addSql(
      `alter table "event_deliveries" add constraint "event_deliveries_event_id_foreign" foreign key ("event_id") references "events" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "event_deliveries" add constraint "event_deliveries_endpoint_id_foreign" foreign key ("endpoint_id") references "webhook_endpoints" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(`create index "event_deliveries_due_index" on "event_deliveries" ("next_attempt_at") where "status" = 'PENDING';`);
    this.addSql(`create index "event_deliveries_order_index" on "event_deliveries" ("endpoint_id", "order_key", "event_id") where "status" = 'PENDING';`);
    this.addSql(`create index "event_deliveries_endpoint_id_index" on "event_deliveries" ("endpoint_id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "event_deliveries";`);
    this.addSql(`drop table if exists "webhook_endpoints";`);
    this.addSql(`drop table if exists "events";`);
  }
}
