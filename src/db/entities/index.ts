export { Card } from "./card.entity";
export { Payment } from "./payment.entity";
export { Plan } from "./plan.entity";
export { Subscription } from "./subscription.entity";
export { WebhookEvent } from "./webhook-event.entity";
export * from "./enums";
