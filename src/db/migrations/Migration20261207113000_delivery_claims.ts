import { Migration } from "@mikro-orm/migrations";

/**
 * Event deliveries are claimed from their rows with a lease (src/events/delivery.ts),
 * not queued as pg-boss jobs: the time a job was queued is no longer kept.
 */
export class Migration20261207113000_delivery_claims extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "event_deliveries" drop column if exists "enqueued_at";`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "event_deliveries" add column if not exists "enqueued_at" timestamptz null;`);
  }
}
