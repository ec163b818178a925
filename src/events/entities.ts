import { Entity, Enum, Index, ManyToOne, PrimaryKey, Property, OptionalProps, Unique } from "@mikro-orm/core";

/**
 * Something that happened to a payment, card or subscription, written in the
 * same transaction as the change (src/events/record.ts): the ledger, and the
 * outbox the webhooks and live updates are sent from.
 */
@Entity({ tableName: "events" })
@Index({ name: "events_customer_uid_id_index", properties: ["customerUid", "id"] })
@Index({ name: "events_subscription_id_id_index", properties: ["subscriptionId", "id"] })
@Index({ name: "events_type_id_index", properties: ["type", "id"] })
export class EventRecord {
  [OptionalProps]?: "createdAt";

  @PrimaryKey({ type: "bigint", autoincrement: true })
  id!: string;

  @Property({ type: "string", length: 60 })
  type!: string;

  @Property({ type: "string", length: 80, nullable: true })
  customerUid?: string | null;

  @Property({ type: "string", length: 24, nullable: true })
  subscriptionId?: string | null;

  @Property({ type: "string", length: 80, nullable: true })
  merchantUid?: string | null;

  @Property({ type: "json" })
  data!: Record<string, unknown>;

  @Property({ type: "datetime", defaultRaw: "now()" })
  createdAt: Date = new Date();
}

/** A merchant URL that receives events. The secrets sign deliveries and are shown once, when made. */
@Entity({ tableName: "webhook_endpoints" })
export class WebhookEndpointRecord {
  [OptionalProps]?: "enabled" | "eventTypes" | "createdAt" | "updatedAt" | "previousSecret" | "previousSecretExpiresAt";

  @PrimaryKey({ type: "uuid" })
  id!: string;

  @Property({ type: "text" })
  url!: string;

  /** Empty: every type. */
  @Property({ type: "text[]", defaultRaw: "'{}'" })
  eventTypes: string[] = [];

  @Property({ type: "boolean", default: true })
  enabled: boolean = true;

  @Property({ type: "string", length: 100, hidden: true })
  secret!: string;

  /** The secret before the last rotation: it signs beside the new one until previousSecretExpiresAt. */
  @Property({ type: "string", length: 100, nullable: true, hidden: true })
  previousSecret?: string | null;

  @Property({ type: "datetime", nullable: true })
  previousSecretExpiresAt?: Date | null;

  @Property({ type: "datetime", defaultRaw: "now()" })
  createdAt: Date = new Date();

  @Property({ type: "datetime", defaultRaw: "now()" })
  updatedAt: Date = new Date();
}

/** One event sent (or to be sent) to one endpoint, and how its attempts went. */
@Entity({ tableName: "event_deliveries" })
@Unique({ name: "event_deliveries_event_endpoint_unique", properties: ["eventId", "endpointId"] })
@Index({ name: "event_deliveries_due_index", expression: `create index "event_deliveries_due_index" on "event_deliveries" ("next_attempt_at") where "status" = 'PENDING'` })
@Index({
  name: "event_deliveries_order_index",
  expression: `create index "event_deliveries_order_index" on "event_deliveries" ("endpoint_id", "order_key", "event_id") where "status" = 'PENDING'`,
})
export class EventDeliveryRecord {
  [OptionalProps]?: "status" | "attempts" | "roundStart" | "createdAt" | "updatedAt";

  @PrimaryKey({ type: "uuid", defaultRaw: "gen_random_uuid()" })
  id!: string;

  @ManyToOne(() => EventRecord, { fieldName: "event_id", mapToPk: true, deleteRule: "cascade" })
  eventId!: string;

  @ManyToOne(() => WebhookEndpointRecord, { fieldName: "endpoint_id", mapToPk: true, deleteRule: "cascade", index: "event_deliveries_endpoint_id_index" })
  endpointId!: string;

  /** Deliveries of one key (the event's subscription) reach an endpoint in the order of their events. */
  @Property({ type: "string", length: 80, nullable: true })
  orderKey?: string | null;

  /** PENDING, DELIVERED or FAILED (retries exhausted). */
  @Enum({ items: ["PENDING", "DELIVERED", "FAILED"], default: "PENDING" })
  status: string = "PENDING";

  @Property({ type: "integer", default: 0 })
  attempts: number = 0;

  /** `attempts` when the current round began (a redelivery starts a new one): the retry schedule counts from here. */
  @Property({ type: "integer", default: 0 })
  roundStart: number = 0;

  @Property({ type: "datetime", nullable: true })
  nextAttemptAt?: Date | null;

  /** An attempt is in progress until then (one attempt per event and endpoint at a time); once past, any process may claim the delivery again. */
  @Property({ type: "datetime", nullable: true })
  leasedUntil?: Date | null;

  @Property({ type: "integer", nullable: true })
  lastStatusCode?: number | null;

  @Property({ type: "text", nullable: true })
  lastError?: string | null;

  @Property({ type: "datetime", nullable: true })
  deliveredAt?: Date | null;

  @Property({ type: "datetime", defaultRaw: "now()" })
  createdAt: Date = new Date();

  @Property({ type: "datetime", defaultRaw: "now()" })
  updatedAt: Date = new Date();
}
