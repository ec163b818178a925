export { Card } from "./card.entity";
export { Payment } from "./payment.entity";
export { Subscription } from "./subscription.entity";
export { WebhookEvent } from "./webhook-event.entity";
export * from "./enums";
