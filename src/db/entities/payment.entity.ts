import { Entity, Enum, Index, ManyToOne, PrimaryKey, Property, Unique, OptionalProps } from "@mikro-orm/core";
import { Field, Int, ObjectType } from "type-graphql";
import { PaymentKind, PaymentStatus } from "./enums";
import { Subscription } from "./subscription.entity";

/**
 * One order (merchant_uid) and what Iamport last reported about it. Its GraphQL
 * fields are its properties, read by graphql-js's own resolver (simpleResolvers).
 */
@ObjectType({ simpleResolvers: true })
@Entity({ tableName: "payments" })
// At most one charge per subscription period and attempt: enforced here, not only in code.
@Unique({ name: "payments_subscription_period_attempt_unique", properties: ["subscription", "period", "attempt"] })
@Index({ name: "payments_customer_uid_id_index", properties: ["customerUid", "id"] })
@Index({ name: "payments_status_id_index", properties: ["status", "id"] })
@Index({ name: "payments_subscription_id_index", properties: ["subscription", "id"] })
@Index({ name: "payments_adjusts_subscription_id_index", properties: ["adjustsSubscriptionId", "id"] })
export class Payment {
  [OptionalProps]?: "cancelledAmount" | "taxFreeAmount" | "currency" | "status" | "createdAt" | "updatedAt";

  @PrimaryKey({ type: "bigint", autoincrement: true })
  id!: string;

  @Field(() => String)
  @Property({ type: "string", length: 80, unique: true })
  merchantUid!: string;

  @Field(() => String, { nullable: true })
  @Property({ type: "string", length: 80, nullable: true, unique: true })
  impUid?: string | null;

  @Field(() => String, { nullable: true })
  @Property({ type: "string", length: 80, nullable: true })
  customerUid?: string | null;

  @Field(() => String)
  @Property({ type: "string", length: 200 })
  name!: string;

  @Field(() => Int, { description: "The amount the order expects." })
  @Property({ type: "integer" })
  amount!: number;

  @Field(() => Int, { nullable: true, description: "The amount the payment provider reports as paid, once known." })
  @Property({ type: "integer", nullable: true })
  paidAmount?: number | null;

  @Field(() => Int)
  @Property({ type: "integer" })
  cancelledAmount: number = 0;

  @Field(() => Int, { description: "The tax-free part of amount (Iamport V1's tax_free, PortOne V2's amount.taxFree)." })
  @Property({ type: "integer" })
  taxFreeAmount: number = 0;

  @Field(() => Int, { nullable: true, description: "The VAT part of amount (V1's vat_amount, V2's amount.vat); null: left to the payment provider (1/11 of the taxed part)." })
  @Property({ type: "integer", nullable: true })
  vatAmount?: number | null;

  @Field(() => String)
  @Property({ type: "string", length: 3 })
  currency: string = "KRW";

  @Field(() => PaymentStatus)
  @Enum({ items: () => PaymentStatus })
  status: PaymentStatus = PaymentStatus.PENDING;

  @Enum({ items: () => PaymentKind })
  kind!: PaymentKind;

  @Field(() => String, { nullable: true })
  @Property({ type: "text", nullable: true })
  failReason?: string | null;

  @Property({ type: "string", length: 20, nullable: true })
  payMethod?: string | null;

  @Property({ type: "string", length: 100, nullable: true })
  buyerName?: string | null;

  @Property({ type: "string", length: 200, nullable: true })
  buyerEmail?: string | null;

  @Property({ type: "string", length: 40, nullable: true })
  buyerTel?: string | null;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  scheduledAt?: Date | null;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  paidAt?: Date | null;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  failedAt?: Date | null;

  @Field(() => Date, { nullable: true })
  @Property({ type: "datetime", nullable: true })
  cancelledAt?: Date | null;

  @Field(() => String, { nullable: true })
  @Property({ type: "text", nullable: true })
  receiptUrl?: string | null;

  @ManyToOne(() => Subscription, { nullable: true, deleteRule: "set null" })
  subscription?: Subscription | null;

  /**
   * A charge outside a subscription's renewals that adjusts its current
   * period (a plan change's difference): listed with the subscription's
   * payments, but not linked through `subscription`, whose charges are the
   * renewals and retries the settlement's renewal step follows.
   */
  @Property({ type: "string", length: 24, nullable: true })
  adjustsSubscriptionId?: string | null;

  /** Billing period number (1 = first) of the subscription this payment belongs to. */
  @Property({ type: "integer", nullable: true })
  period?: number | null;

  /** Attempt number within the period (1 = the renewal, 2.. = dunning retries). */
  @Property({ type: "integer", nullable: true })
  attempt?: number | null;

  /** The last payment object Iamport returned (card numbers in it are masked by Iamport). */
  @Property({ type: "json", nullable: true })
  iamport?: Record<string, unknown> | null;

  /**
   * "v2": `npm run migrate:v2` moved this charge from Iamport V1 to PortOne V2
   * (set once V1 no longer holds it), so a server still on V1 in migration mode
   * asks V2 about it (src/provider/migration.ts). Null: the server's own provider.
   */
  @Property({ type: "string", length: 2, nullable: true })
  heldBy?: string | null;

  /** When the server last asked Iamport about this payment (reconciliation). */
  @Property({ type: "datetime", nullable: true })
  checkedAt?: Date | null;

  @Field(() => Date)
  @Property({ type: "datetime" })
  createdAt: Date = new Date();

  @Field(() => Date)
  @Property({ type: "datetime", onUpdate: () => new Date() })
  updatedAt: Date = new Date();
}
