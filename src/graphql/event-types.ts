import { GraphQLJSON } from "graphql-scalars";
import { Field, ID, Int, ObjectType } from "type-graphql";
import { PageInfo } from "./types";

@ObjectType({ description: "Something that happened to a payment, card or subscription, recorded in the same transaction as the change." })
export class Event {
  @Field(() => ID)
  id!: string;

  @Field(() => String, {
    description: "e.g. payment.paid, payment.failed, payment.refunded, subscription.renewed, subscription.past_due, subscription.canceled, card.registered",
  })
  type!: string;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => String, { nullable: true })
  customerUid!: string | null;

  @Field(() => ID, { nullable: true })
  subscriptionId!: string | null;

  @Field(() => String, { nullable: true })
  merchantUid!: string | null;

  @Field(() => GraphQLJSON, { description: "The object after the change, as the API shows it." })
  data!: Record<string, unknown>;
}

@ObjectType()
export class EventConnection {
  @Field(() => [Event])
  nodes!: Event[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@ObjectType({ description: "A merchant URL that receives events, signed as Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)." })
export class WebhookEndpoint {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  url!: string;

  @Field(() => [String], { description: "Empty: every type." })
  eventTypes!: string[];

  @Field(() => Boolean)
  enabled!: boolean;

  @Field(() => Date)
  createdAt!: Date;
}

@ObjectType({ description: "Shown once: the secret (whsec_...) that signs the endpoint's deliveries." })
export class WebhookEndpointSecret {
  @Field(() => WebhookEndpoint)
  endpoint!: WebhookEndpoint;

  @Field(() => String)
  secret!: string;
}

@ObjectType()
export class EventDelivery {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  eventId!: string;

  @Field(() => ID)
  endpointId!: string;

  @Field(() => Int)
  attempts!: number;

  @Field(() => String, { description: "PENDING, DELIVERED, FAILED (retries exhausted)" })
  status!: string;

  @Field(() => Int, { nullable: true })
  lastStatusCode!: number | null;

  @Field(() => String, { nullable: true })
  lastError!: string | null;

  @Field(() => Date, { nullable: true })
  nextAttemptAt!: Date | null;

  @Field(() => Date, { nullable: true })
  deliveredAt!: Date | null;
}
