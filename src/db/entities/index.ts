export { Card } from "./card.entity";
export { Notice } from "./notice.entity";
export { Payment } from "./payment.entity";
export { Plan } from "./plan.entity";
export { PriceChange } from "./price-change.entity";
export { Subscription } from "./subscription.entity";
export { WebhookEvent } from "./webhook-event.entity";
export * from "./enums";
