import type { MigrationObject } from "@mikro-orm/core";
import { Migration20261121133414_initial } from "./Migration20261121133414_initial";
import { Migration20261121140000_rate_limits } from "./Migration20261121140000_rate_limits";
import { Migration20261121210000_unprocessed_events_index } from "./Migration20261121210000_unprocessed_events_index";
import { Migration20261207001000_card_replacements } from "./Migration20261207001000_card_replacements";
import { Migration20261207004000_idempotency } from "./Migration20261207004000_idempotency";
import { Migration20261207010000_events } from "./Migration20261207010000_events";
import { Migration20261207080000_plans } from "./Migration20261207080000_plans";
import { Migration20261207083000_trials } from "./Migration20261207083000_trials";
import { Migration20261207090000_billing_key } from "./Migration20261207090000_billing_key";
import { Migration20261207090000_notices } from "./Migration20261207090000_notices";
import { Migration20261207093000_price_changes } from "./Migration20261207093000_price_changes";
import { Migration20261207094000_subscription_changes } from "./Migration20261207094000_subscription_changes";
import { Migration20261207100000_paused_live } from "./Migration20261207100000_paused_live";
import { Migration20261207110000_plan_changes } from "./Migration20261207110000_plan_changes";
import { Migration20261207113000_delivery_claims } from "./Migration20261207113000_delivery_claims";
import { Migration20261207120000_held_by } from "./Migration20261207120000_held_by";

/** Every committed migration, in order. Listed explicitly so that compiled and test runs find the same set. */
export const migrationsList: MigrationObject[] = [
  { name: "Migration20261121133414_initial", class: Migration20261121133414_initial },
  { name: "Migration20261121140000_rate_limits", class: Migration20261121140000_rate_limits },
  { name: "Migration20261121210000_unprocessed_events_index", class: Migration20261121210000_unprocessed_events_index },
  { name: "Migration20261207001000_card_replacements", class: Migration20261207001000_card_replacements },
  { name: "Migration20261207004000_idempotency", class: Migration20261207004000_idempotency },
  { name: "Migration20261207010000_events", class: Migration20261207010000_events },
  { name: "Migration20261207080000_plans", class: Migration20261207080000_plans },
  { name: "Migration20261207083000_trials", class: Migration20261207083000_trials },
  { name: "Migration20261207090000_billing_key", class: Migration20261207090000_billing_key },
  { name: "Migration20261207090000_notices", class: Migration20261207090000_notices },
  { name: "Migration20261207093000_price_changes", class: Migration20261207093000_price_changes },
  { name: "Migration20261207094000_subscription_changes", class: Migration20261207094000_subscription_changes },
  { name: "Migration20261207100000_paused_live", class: Migration20261207100000_paused_live },
  { name: "Migration20261207110000_plan_changes", class: Migration20261207110000_plan_changes },
  { name: "Migration20261207113000_delivery_claims", class: Migration20261207113000_delivery_claims },
  { name: "Migration20261207120000_held_by", class: Migration20261207120000_held_by },
];
