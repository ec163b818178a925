import type { BillingDeps } from "../context";
import type { PaymentService } from "../payment.service";
import type { ScheduleRegistrar } from "../payments/schedules";
import type { PlanService } from "../plan.service";
import type { Settlement } from "../settlement";

/** What every subscription use case is given: the provider and config, and the billing services it calls. */
export interface SubscriptionDeps extends BillingDeps {
  settlement: Settlement;
  schedules: ScheduleRegistrar;
  plans: PlanService;
  payments: PaymentService;
}
