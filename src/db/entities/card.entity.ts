import { Entity, Enum, PrimaryKey, Property, OptionalProps } from "@mikro-orm/core";
import { Field, Int, ObjectType } from "type-graphql";
import { CardStatus, CardType } from "./enums";

/** A billing key registered with Iamport. Never card number, expiry, birth or password: only what Iamport returns. */
@ObjectType({ simpleResolvers: true, description: "A billing key registered with the payment provider (Iamport V1 or PortOne V2). Card numbers are never stored: only what the provider returns." })
@Entity({ tableName: "cards" })
export class Card {
  [OptionalProps]?: "status" | "createdAt" | "updatedAt" | "replacements";

  @PrimaryKey({ type: "bigint", autoincrement: true })
  id!: string;

  @Field(() => String)
  @Property({ type: "string", length: 80, unique: true })
  customerUid!: string;

  @Field(() => String, { nullable: true })
  @Property({ type: "string", length: 80, nullable: true })
  customerId?: string | null;

  @Field(() => String, { nullable: true })
  @Property({ type: "string", length: 100, nullable: true })
  cardName?: string | null;

  @Property({ type: "string", length: 20, nullable: true })
  cardCode?: string | null;

  @Field(() => String, { nullable: true })
  @Property({ type: "string", length: 40, nullable: true })
  cardNumberMasked?: string | null;

  @Field(() => CardType, { nullable: true })
  @Enum({ items: () => CardType, nullable: true })
  cardType?: CardType | null;

  @Field(() => String, { nullable: true })
  @Property({ type: "string", length: 40, nullable: true })
  pgProvider?: string | null;

  @Property({ type: "string", length: 80, nullable: true })
  pgId?: string | null;

  @Field(() => String, {
    nullable: true,
    description: "The billing key PortOne V2 issued for this card; null on Iamport V1, where customerUid is the key.",
  })
  @Property({ type: "string", length: 200, nullable: true, unique: "cards_billing_key_unique" })
  billingKey?: string | null;

  @Field(() => CardStatus)
  @Enum({ items: () => CardStatus })
  status: CardStatus = CardStatus.ACTIVE;

  @Field(() => Date)
  @Property({ type: "datetime" })
  createdAt: Date = new Date();

  @Field(() => Date)
  @Property({ type: "datetime", onUpdate: () => new Date() })
  updatedAt: Date = new Date();

  @Property({ type: "datetime", nullable: true })
  deletedAt?: Date | null;

  @Field(() => Date, { nullable: true, description: "When this customer's active card was last replaced by another (registerCard with replace: true)." })
  @Property({ type: "datetime", nullable: true })
  replacedAt?: Date | null;

  @Field(() => Int, { description: "How many times this customer's active card was replaced by another." })
  @Property({ type: "integer" })
  replacements: number = 0;
}
