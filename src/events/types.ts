/**
 * Every event type the server records, in one list: the GraphQL filters, the
 * endpoint subscriptions (eventTypes) and the README's table read it.
 */
export const EVENT_TYPES = [
  "payment.paid",
  "payment.failed",
  "payment.refunded",
  "payment.forgery_suspected",
  "card.registered",
  "card.deleted",
  "subscription.started",
  "subscription.renewed",
  "subscription.past_due",
  "subscription.recovered",
  "subscription.unpaid",
  "subscription.canceled",
  "subscription.cancel_scheduled",
  "subscription.trial_ending",
  "subscription.renewal_upcoming",
  "subscription.price_change_requested",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

/** The channel of PostgreSQL NOTIFY that carries the id of each recorded event. */
export const EVENTS_CHANNEL = "billing_events";
