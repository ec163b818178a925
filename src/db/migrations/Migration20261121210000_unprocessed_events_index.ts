import { Migration } from "@mikro-orm/migrations";

/**
 * The index that finds webhook events left unprocessed (reconciliation) holds
 * only those: the old one indexed every event ever received by
 * (processed_at, received_at), so it grew with the inbox and every event cost
 * one more index entry when it was settled. Partial, an event is indexed when
 * it is recorded and never again once processed_at is set.
 */
export class Migration20261121210000_unprocessed_events_index extends Migration {
  override async up(): Promise<void> {
    this.addSql(`drop index if exists "webhook_events_unprocessed_index";`);
    this.addSql(`create index "webhook_events_unprocessed_index" on "webhook_events" ("received_at") where "processed_at" is null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "webhook_events_unprocessed_index";`);
    this.addSql(`create index "webhook_events_unprocessed_index" on "webhook_events" ("processed_at", "received_at");`);
  }
}
