import { Migration } from '@mikro-orm/migrations';

export class Migration20261121133414_initial extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "cards" ("id" bigserial primary key, "customer_uid" varchar(80) not null, "customer_id" varchar(80) null, "card_name" varchar(100) null, "card_code" varchar(20) null, "card_number_masked" varchar(40) null, "card_type" text check ("card_type" in ('CREDIT', 'CHECK')) null, "pg_provider" varchar(40) null, "pg_id" varchar(80) null, "status" text check ("status" in ('ACTIVE', 'DELETED')) not null default 'ACTIVE', "created_at" timestamptz not null, "updated_at" timestamptz not null, "deleted_at" timestamptz null);`);
    this.addSql(`alter table "cards" add constraint "cards_customer_uid_unique" unique ("customer_uid");`);

    this.addSql(`create table "subscriptions" ("id" varchar(24) not null, "customer_uid" varchar(80) not null, "name" varchar(200) not null, "amount" int not null, "interval" text check ("interval" in ('DAY', 'WEEK', 'MONTH', 'YEAR')) not null, "interval_count" int not null default 1, "anchor_at" timestamptz not null, "status" text check ("status" in ('INCOMPLETE', 'ACTIVE', 'PAST_DUE', 'UNPAID', 'CANCELED')) not null default 'ACTIVE', "status_reason" text null, "current_period" int not null default 0, "current_period_start" timestamptz null, "current_period_end" timestamptz null, "next_payment_at" timestamptz null, "next_merchant_uid" varchar(80) null, "cancel_at_period_end" boolean not null default false, "canceled_at" timestamptz null, "cancel_reason" text null, "created_at" timestamptz not null, "updated_at" timestamptz not null, constraint "subscriptions_pkey" primary key ("id"));`);
    this.addSql(`create index "subscriptions_status_next_payment_at_index" on "subscriptions" ("status", "next_payment_at");`);
    this.addSql(`create index "subscriptions_customer_uid_id_index" on "subscriptions" ("customer_uid", "id");`);

    this.addSql(`create table "payments" ("id" bigserial primary key, "merchant_uid" varchar(80) not null, "imp_uid" varchar(80) null, "customer_uid" varchar(80) null, "name" varchar(200) not null, "amount" int not null, "paid_amount" int null, "cancelled_amount" int not null default 0, "currency" varchar(3) not null default 'KRW', "status" text check ("status" in ('PENDING', 'SCHEDULED', 'READY', 'PAID', 'FAILED', 'CANCELLED', 'REVOKED', 'FORGERY_SUSPECTED')) not null default 'PENDING', "kind" text check ("kind" in ('AGAIN', 'SCHEDULE', 'CHECKOUT')) not null, "fail_reason" text null, "pay_method" varchar(20) null, "buyer_name" varchar(100) null, "buyer_email" varchar(200) null, "buyer_tel" varchar(40) null, "scheduled_at" timestamptz null, "paid_at" timestamptz null, "failed_at" timestamptz null, "cancelled_at" timestamptz null, "receipt_url" text null, "subscription_id" varchar(24) null, "period" int null, "attempt" int null, "iamport" jsonb null, "checked_at" timestamptz null, "created_at" timestamptz not null, "updated_at" timestamptz not null);`);
    this.addSql(`alter table "payments" add constraint "payments_merchant_uid_unique" unique ("merchant_uid");`);
    this.addSql(`alter table "payments" add constraint "payments_imp_uid_unique" unique ("imp_uid");`);
    this.addSql(`create index "payments_subscription_id_index" on "payments" ("subscription_id", "id");`);
    this.addSql(`create index "payments_status_id_index" on "payments" ("status", "id");`);
    this.addSql(`create index "payments_customer_uid_id_index" on "payments" ("customer_uid", "id");`);
    this.addSql(`alter table "payments" add constraint "payments_subscription_period_attempt_unique" unique ("subscription_id", "period", "attempt");`);

    this.addSql(`create table "webhook_events" ("id" bigserial primary key, "source" varchar(40) not null, "imp_uid" varchar(80) null, "merchant_uid" varchar(80) null, "claimed_status" varchar(40) null, "body" jsonb not null, "remote_ip" varchar(64) null, "received_at" timestamptz not null, "processed_at" timestamptz null, "outcome" text null, "attempts" int not null default 0);`);
    this.addSql(`create index "webhook_events_imp_uid_index" on "webhook_events" ("imp_uid");`);
    this.addSql(`create index "webhook_events_unprocessed_index" on "webhook_events" ("processed_at", "received_at");`);

    this.addSql(`alter table "payments" add constraint "payments_subscription_id_foreign" foreign key ("subscription_id") references "subscriptions" ("id") on update cascade on delete set null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "payments" drop constraint "payments_subscription_id_foreign";`);

    this.addSql(`drop table if exists "cards" cascade;`);

    this.addSql(`drop table if exists "subscriptions" cascade;`);

    this.addSql(`drop table if exists "payments" cascade;`);

    this.addSql(`drop table if exists "webhook_events" cascade;`);
  }

}
