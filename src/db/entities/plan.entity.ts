import { Entity, Enum, PrimaryKey, Property, OptionalProps } from "@mikro-orm/core";
import { Field, ID, Int, ObjectType } from "type-graphql";
import { BillingInterval } from "./enums";

/**
 * What a merchant sells on repeat: a subscription started with its code takes
 * name, amount, interval and trial from it. Archived plans take no new
 * subscriptions; the subscriptions already started keep their own copies.
 */
@ObjectType()
@Entity({ tableName: "plans" })
export class Plan {
  [OptionalProps]?: "intervalCount" | "trialDays" | "taxFreeAmount" | "active" | "createdAt" | "updatedAt";

  @Field(() => ID)
  @PrimaryKey({ type: "string", length: 24 })
  id!: string;

  /** The merchant's name for it (e.g. "pro-monthly"): unique, never changes. */
  @Field(() => String)
  @Property({ type: "string", length: 64, unique: "plans_code_unique" })
  code!: string;

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

  @Field(() => Int)
  @Property({ type: "integer" })
  trialDays: number = 0;

  @Field(() => Int, { description: "The tax-free part of each charge (Iamport V1's tax_free, PortOne V2's amount.taxFree), taken by subscriptions started from the plan." })
  @Property({ type: "integer" })
  taxFreeAmount: number = 0;

  @Field(() => Int, { nullable: true, description: "The VAT part of each charge (V1's vat_amount, V2's amount.vat); null: left to the payment provider." })
  @Property({ type: "integer", nullable: true })
  vatAmount?: number | null;

  @Field(() => Boolean)
  @Property({ type: "boolean" })
  active: boolean = true;

  @Field(() => Date)
  @Property({ type: "datetime" })
  createdAt: Date = new Date();

  @Property({ type: "datetime", onUpdate: () => new Date() })
  updatedAt: Date = new Date();
}
