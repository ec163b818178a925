import { Entity, Enum, Index, PrimaryKey, Property, OptionalProps, Unique } from "@mikro-orm/core";
import { Field, ID, Int, ObjectType } from "type-graphql";
import { BillingInterval, SubscriptionStatus } from "./enums";

/** A recurring charge of one customer's billing key. Its GraphQL fields are its properties (simpleResolvers). */
@ObjectType({ simpleResolvers: true })
@Entity({ tableName: "subscriptions" })
@Index({ name: "subscriptions_customer_uid_id_index", properties: ["customerUid", "id"] })
@Index({ name: "subscriptions_status_next_payment_at_index", properties: ["status", "nextPaymentAt"] })
// One live subscription of a name per customer, unless started with allowDuplicate: two starts racing
// each other cannot both pass it (SubscriptionService.start).
@Unique({
  name: "subscriptions_live_name_unique",
  expression: `create unique index "subscriptions_live_name_unique" on "subscriptions" ("customer_uid", "name") where "status" in ('INCOMPLETE', 'ACTIVE', 'PAST_DUE') and not "allow_duplicate"`,
})
export class Subscription {
  [OptionalProps]?: "intervalCount" | "status" | "currentPeriod" | "cancelAtPeriodEnd" | "allowDuplicate" | "createdAt" | "updatedAt";

  /** Short random id, e.g. "s8f3k2j9q1x": it goes into deterministic merchant_uids. */
  @Field(() => ID)
  @PrimaryKey({ type: "string", length: 24 })
  id!: string;

  @Field(() => String)
  @Property({ type: "string", length: 80 })
  customerUid!: string;

  @Field(() => String)
  @Property({ type: "string", length: 200 })
  name!: string;

  @Field(() => Int)
  @Property({ type: "integer" })
  amount!: number;

  @Field(() => BillingInterval)
  @Enum({ items: () => BillingInterval })
  interval!: BillingInterval;

  @Field(() => Int)
  @Property({ type: "integer" })
  intervalCount: number = 1;

  /** The code of the plan it was started from (Subscription.plan), if any. */
  @Property({ type: "string", length: 64, nullable: true })
  planCode?: string | null;

  /** The billing anchor: period n starts at anchor + (n-1) intervals, in the billing time zone. */
  @Property({ type: "datetime" })
  anchorAt!: Date;

  @Field(() => SubscriptionStatus)
  @Enum({ items: () => SubscriptionStatus })
  status: SubscriptionStatus = SubscriptionStatus.ACTIVE;

  /** Why the subscription is in its status, in words (a declined first charge, a retry scheduled...). */
  @Field(() => String, { nullable: true, description: "Why the subscription is in its status: a declined first charge, a retry scheduled, ..." })
  @Property({ type: "text", nullable: true })
  statusReason?: string | null;

  /** The period number the subscription is in (0 before the first payment). */
  @Property({ type: "integer" })
  currentPeriod: number = 0;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  currentPeriodStart?: Date | null;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  currentPeriodEnd?: Date | null;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  nextPaymentAt?: Date | null;

  /** merchant_uid of the payment registered with Iamport's schedule, if any. */
  @Property({ type: "string", length: 80, nullable: true })
  nextMerchantUid?: string | null;

  @Field(() => Boolean)
  @Property({ type: "boolean" })
  cancelAtPeriodEnd: boolean = false;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  canceledAt?: Date | null;

  @Property({ type: "text", nullable: true })
  cancelReason?: string | null;

  /** Started with allowDuplicate: it may run beside another live subscription of the same name. */
  @Property({ type: "boolean" })
  allowDuplicate: boolean = false;

  /**
   * Derived from the Idempotency-Key of the request that started it: the re-run
   * of that request (after an unknown outcome) finds this subscription instead
   * of starting and charging another.
   */
  @Property({ type: "string", length: 40, nullable: true, unique: "subscriptions_request_ref_unique" })
  requestRef?: string | null;

  @Field(() => Date)
  @Property({ type: "datetime" })
  createdAt: Date = new Date();

  @Field(() => Date)
  @Property({ type: "datetime", onUpdate: () => new Date() })
  updatedAt: Date = new Date();
}
