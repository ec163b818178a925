import { Entity, Index, PrimaryKey, Property, OptionalProps, Unique } from "@mikro-orm/core";
import { Field, ID, ObjectType } from "type-graphql";

/** The kinds of notice, each sent as its event (src/billing/notice.service.ts). */
export const NOTICE_KINDS = ["TRIAL_ENDING", "RENEWAL_UPCOMING", "PRICE_CHANGE"] as const;
export type NoticeKind = (typeof NOTICE_KINDS)[number];

/**
 * A notice the customer must get before a charge, recorded when it is sent
 * (as its event, in the same transaction). The unique key (subscription, kind,
 * what it is about) makes each notice happen once, whichever replica's
 * reconciliation gets to it first, and however late.
 */
@ObjectType({ description: "A notice the customer must get before a charge (sent as an event to the merchant's endpoints)." })
@Entity({ tableName: "notices" })
@Unique({ name: "notices_subscription_kind_ref_unique", properties: ["subscriptionId", "kind", "ref"] })
@Index({ name: "notices_subscription_id_due_at_index", properties: ["subscriptionId", "dueAt"] })
export class Notice {
  [OptionalProps]?: "createdAt";

  @Field(() => ID)
  @PrimaryKey({ type: "uuid", defaultRaw: "gen_random_uuid()" })
  id!: string;

  @Field(() => String, { description: "RENEWAL_UPCOMING, TRIAL_ENDING, PRICE_CHANGE" })
  @Property({ type: "string", length: 30 })
  kind!: NoticeKind;

  @Field(() => ID)
  @Property({ type: "string", length: 24 })
  subscriptionId!: string;

  /** What the notice is about: the trial's end, the renewal's period, the price change's id. */
  @Property({ type: "string", length: 80 })
  ref!: string;

  @Field(() => Date, { description: "When it is due to go out." })
  @Property({ type: "datetime" })
  dueAt!: Date;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  sentAt?: Date | null;

  /** The event that carried it. */
  @Property({ type: "bigint", nullable: true })
  eventId?: string | null;

  @Property({ type: "datetime", defaultRaw: "now()" })
  createdAt: Date = new Date();
}
