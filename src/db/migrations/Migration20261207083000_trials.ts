import { Migration } from "@mikro-orm/migrations";

/**
 * Free trials: the TRIALING status (live, so one per name and customer like the
 * others), the trial's end, and the customer's consent to paid renewals after it.
 */
export class Migration20261207083000_trials extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "subscriptions" drop constraint if exists "subscriptions_status_check";`);
    this.addSql(
      `alter table "subscriptions" add constraint "subscriptions_status_check" check ("status" in ('INCOMPLETE', 'TRIALING', 'ACTIVE', 'PAST_DUE', 'UNPAID', 'CANCELED'));`,
    );
    this.addSql(
      `alter table "subscriptions" add column "trial_end" timestamptz null, add column "conversion_consent_at" timestamptz null, add column "conversion_consent_by" varchar(20) null;`,
    );
    this.addSql(`drop index if exists "subscriptions_live_name_unique";`);
    this.addSql(
      `create unique index "subscriptions_live_name_unique" on "subscriptions" ("customer_uid", "name") where "status" in ('INCOMPLETE', 'TRIALING', 'ACTIVE', 'PAST_DUE') and not "allow_duplicate";`,
    );
    // The reconciliation sweep's look-up of trials that reached their end.
    this.addSql(`create index "subscriptions_trial_end_index" on "subscriptions" ("trial_end") where "status" = 'TRIALING';`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "subscriptions_trial_end_index";`);
    this.addSql(`drop index if exists "subscriptions_live_name_unique";`);
    this.addSql(
      `create unique index "subscriptions_live_name_unique" on "subscriptions" ("customer_uid", "name") where "status" in ('INCOMPLETE', 'ACTIVE', 'PAST_DUE') and not "allow_duplicate";`,
    );
    this.addSql(`alter table "subscriptions" drop column if exists "conversion_consent_by", drop column if exists "conversion_consent_at", drop column if exists "trial_end";`);
    this.addSql(`alter table "subscriptions" drop constraint if exists "subscriptions_status_check";`);
    this.addSql(
      `alter table "subscriptions" add constraint "subscriptions_status_check" check ("status" in ('INCOMPLETE', 'ACTIVE', 'PAST_DUE', 'UNPAID', 'CANCELED'));`,
    );
  }
}
