import { Entity, Enum, Index, PrimaryKey, Property, OptionalProps, Unique } from "@mikro-orm/core";
import { Field, ID, Int, ObjectType } from "type-graphql";
import { PriceChangeStatus } from "./enums";

/**
 * A change of a subscription's amount from one renewal on. An increase waits
 * for the customer's consent (전자상거래법 §13⑥); a decrease is accepted at
 * once. `appliedAt` marks when the change came into force: the subscription's
 * amount became the new one, with the claim that follows its renewal (or,
 * refused, when the subscription was set to end before that renewal). A
 * change that carries a plan (`planCode`) moves the subscription to that plan
 * when accepted, as its renewal at the new amount is registered.
 */
@ObjectType()
@Entity({ tableName: "price_changes" })
@Index({ name: "price_changes_subscription_id_index", properties: ["subscriptionId", "id"] })
// One change in flight per subscription: waiting for an answer, or accepted and not yet applied.
@Unique({
  name: "price_changes_open_unique",
  expression: `create unique index "price_changes_open_unique" on "price_changes" ("subscription_id") where "status" = 'PENDING' or ("status" = 'ACCEPTED' and "applied_at" is null)`,
})
export class PriceChange {
  [OptionalProps]?: "status" | "createdAt";

  @Field(() => ID)
  @PrimaryKey({ type: "string", length: 24 })
  id!: string;

  @Field(() => ID)
  @Property({ type: "string", length: 24 })
  subscriptionId!: string;

  @Field(() => Int)
  @Property({ type: "integer" })
  oldAmount!: number;

  @Field(() => Int)
  @Property({ type: "integer" })
  newAmount!: number;

  @Field(() => String, {
    nullable: true,
    description: "The plan the subscription moves to with the new amount (a merchant's upgrade by changeSubscriptionPlan, once the customer consents); null: the amount alone changes.",
  })
  @Property({ type: "string", length: 64, nullable: true })
  planCode?: string | null;

  @Field(() => Date, { description: "The first renewal charged at the new amount." })
  @Property({ type: "datetime" })
  effectiveAt!: Date;

  /** The period that renewal pays for. */
  @Property({ type: "integer" })
  effectivePeriod!: number;

  @Field(() => PriceChangeStatus)
  @Enum({ items: () => PriceChangeStatus })
  status: PriceChangeStatus = PriceChangeStatus.PENDING;

  @Field(() => Date)
  @Property({ type: "datetime" })
  requestedAt!: Date;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  respondedAt?: Date | null;

  /** Who answered: "customer" (its own token), "merchant" (a merchant key recording the answer), or "expiry". */
  @Property({ type: "string", length: 20, nullable: true })
  respondedBy?: string | null;

  @Property({ type: "datetime", nullable: true })
  appliedAt?: Date | null;

  @Property({ type: "datetime" })
  createdAt: Date = new Date();
}
