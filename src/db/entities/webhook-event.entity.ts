import { Entity, Index, PrimaryKey, Property, OptionalProps } from "@mikro-orm/core";

/** Every webhook and redirect received, with its outcome: the audit trail and the inbox. */
@Entity({ tableName: "webhook_events" })
// Partial: only the events still unprocessed (reconciliation's question), not every event ever received.
@Index({
  name: "webhook_events_unprocessed_index",
  expression: `create index "webhook_events_unprocessed_index" on "webhook_events" ("received_at") where "processed_at" is null`,
})
@Index({ name: "webhook_events_imp_uid_index", properties: ["impUid"] })
export class WebhookEvent {
  [OptionalProps]?: "receivedAt" | "attempts";

  @PrimaryKey({ type: "bigint", autoincrement: true })
  id!: string;

  /** iamport-webhook | schedule-callback | mobile-redirect | complete | billings */
  @Property({ type: "string", length: 40 })
  source!: string;

  @Property({ type: "string", length: 80, nullable: true })
  impUid?: string | null;

  @Property({ type: "string", length: 80, nullable: true })
  merchantUid?: string | null;

  /** The status the sender claimed: a hint only. */
  @Property({ type: "string", length: 40, nullable: true })
  claimedStatus?: string | null;

  /** The body as received, reduced to the known, non-sensitive fields. */
  @Property({ type: "json" })
  body!: Record<string, unknown>;

  @Property({ type: "string", length: 64, nullable: true })
  remoteIp?: string | null;

  @Property({ type: "datetime" })
  receivedAt: Date = new Date();

  @Property({ type: "datetime", nullable: true })
  processedAt?: Date | null;

  /** e.g. "PAID", "FORGERY_SUSPECTED", "ignored: unknown order", "error: ..." */
  @Property({ type: "text", nullable: true })
  outcome?: string | null;

  @Property({ type: "integer" })
  attempts: number = 0;
}
