import { Entity, Enum, Index, PrimaryKey, Property, OptionalProps, Unique } from "@mikro-orm/core";
import { Field, ID, Int, ObjectType } from "type-graphql";
import { BillingInterval, SubscriptionStatus } from "./enums";

/** A refund claimed by a cancellation (Subscription.refundClaim). */
export interface RefundClaim {
  merchantUid: string;
  amount: number;
  /** The payment's refundable balance when the refund was claimed: Iamport's checksum. */
  balance: number;
  reason: string;
}

/** A recurring charge of one customer's billing key. Its GraphQL fields are its properties (simpleResolvers). */
@ObjectType({ simpleResolvers: true })
@Entity({ tableName: "subscriptions" })
@Index({ name: "subscriptions_customer_uid_id_index", properties: ["customerUid", "id"] })
@Index({ name: "subscriptions_status_next_payment_at_index", properties: ["status", "nextPaymentAt"] })
// Reconciliation's look-up of trials that reached their end (SubscriptionService.endTrials).
@Index({
  name: "subscriptions_trial_end_index",
  expression: `create index "subscriptions_trial_end_index" on "subscriptions" ("trial_end") where "status" = 'TRIALING'`,
})
// One live subscription of a name per customer, unless started with allowDuplicate: two starts racing
// each other cannot both pass it (SubscriptionService.start).
@Unique({
  name: "subscriptions_live_name_unique",
  expression: `create unique index "subscriptions_live_name_unique" on "subscriptions" ("customer_uid", "name") where "status" in ('INCOMPLETE', 'TRIALING', 'ACTIVE', 'PAST_DUE', 'PAUSED') and not "allow_duplicate"`,
})
export class Subscription {
  [OptionalProps]?: "intervalCount" | "status" | "currentPeriod" | "cancelAtPeriodEnd" | "allowDuplicate" | "taxFreeAmount" | "refundedAmount" | "anchorPeriod" | "createdAt" | "updatedAt";

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

  @Field(() => Int, { description: "The tax-free part of each charge (Iamport V1's tax_free, PortOne V2's amount.taxFree)." })
  @Property({ type: "integer" })
  taxFreeAmount: number = 0;

  @Field(() => Int, { nullable: true, description: "The VAT part of each charge (V1's vat_amount, V2's amount.vat); null: left to the payment provider." })
  @Property({ type: "integer", nullable: true })
  vatAmount?: number | null;

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

  /** The period that starts at anchorAt (a resume starts a new anchor at a later period); 1 otherwise. */
  @Property({ type: "integer" })
  anchorPeriod: number = 1;

  @Field(() => Date, { nullable: true, description: "When the subscription was last paused." })
  @Property({ type: "datetime", nullable: true })
  pausedAt?: Date | null;

  @Field(() => Date, { nullable: true, description: "When a paused subscription resumes by itself (reconciliation), if set." })
  @Property({ type: "datetime", nullable: true })
  resumesAt?: Date | null;

  @Field(() => SubscriptionStatus)
  @Enum({ items: () => SubscriptionStatus })
  status: SubscriptionStatus = SubscriptionStatus.ACTIVE;

  /** Why the subscription is in its status, in words (a declined first charge, a retry scheduled...). */
  @Field(() => String, { nullable: true, description: "Why the subscription is in its status: a declined first charge, a retry scheduled, ..." })
  @Property({ type: "text", nullable: true })
  statusReason?: string | null;

  /** The end of the free trial: the first charge is taken then, and only with consent (conversionConsentAt). */
  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  trialEnd?: Date | null;

  @Field(() => Date, {
    nullable: true,
    description: "When the customer consented to paid renewals after the trial; null: the trial ends the subscription.",
  })
  @Property({ type: "datetime", nullable: true })
  conversionConsentAt?: Date | null;

  /** Who recorded the consent: "customer" (the customer's own token) or "merchant" (a merchant key, recording consent it collected). */
  @Property({ type: "string", length: 20, nullable: true })
  conversionConsentBy?: string | null;

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

  @Field(() => Int, { description: "What cancellations with a refund gave back, in won." })
  @Property({ type: "integer" })
  refundedAmount: number = 0;

  /**
   * The refund a cancellation claimed under the subscription's lock and sends
   * to Iamport after its commit: the payment, the amount, and the balance the
   * payment had then (Iamport's checksum), so a repeat sends the same refund
   * and Iamport takes it once. Null once recorded.
   */
  @Property({ type: "json", nullable: true })
  refundClaim?: RefundClaim | null;

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
