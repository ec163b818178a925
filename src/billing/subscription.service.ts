import type { Payment, Subscription } from "../db/entities";
import type { SubscriptionStatus } from "../db/entities/enums";
import type { BillingDeps, Ctx } from "./context";
import type { Page } from "./pagination";
import type { PaymentService } from "./payment.service";
import type { ScheduleRegistrar } from "./payments/schedules";
import type { PlanService } from "./plan.service";
import type { Settlement } from "./settlement";
import { cancel, expireCanceledAtPeriodEnd, releaseCard, type CancelSubscriptionInput } from "./subscriptions/cancel";
import { pause, resume, resumeDue, retryPayment } from "./subscriptions/changes";
import { chargeAndApply } from "./subscriptions/charge";
import type { SubscriptionDeps } from "./subscriptions/deps";
import { changePlan, type ChangePlanInput } from "./subscriptions/plan-change";
import { get, getMany, list } from "./subscriptions/queries";
import { cancellationPreview, finishClaimedRefunds, finishRefund, type CancellationPreview } from "./subscriptions/refunds";
import { revokeAtIamport, revokeOrphans, type AtIamport } from "./subscriptions/revocation";
import { start, type StartSubscriptionInput } from "./subscriptions/start";
import { consentToTrialConversion, endTrials } from "./subscriptions/trials";

/**
 * Subscriptions: start, renew on the schedule webhook, dun, cancel. Each use
 * case lives in its own module under ./subscriptions; this is the one object
 * the resolvers, reconciliation and the other services call them through.
 */
export class SubscriptionService {
  private readonly deps: SubscriptionDeps;

  constructor(deps: BillingDeps, settlement: Settlement, schedules: ScheduleRegistrar, plans: PlanService, payments: PaymentService) {
    this.deps = { ...deps, settlement, schedules, plans, payments };
  }

  start(ctx: Ctx, input: StartSubscriptionInput): Promise<Subscription> {
    return start(this.deps, ctx, input);
  }

  chargeAndApply(ctx: Ctx, payment: Payment): Promise<void> {
    return chargeAndApply(this.deps, ctx, payment);
  }

  cancel(ctx: Ctx, input: CancelSubscriptionInput): Promise<Subscription> {
    return cancel(this.deps, ctx, input);
  }

  retryPayment(ctx: Ctx, id: string): Promise<Subscription> {
    return retryPayment(this.deps, ctx, id);
  }

  pause(ctx: Ctx, id: string, resumesAt?: Date | null): Promise<Subscription> {
    return pause(this.deps, ctx, id, resumesAt);
  }

  resume(ctx: Ctx, id: string): Promise<Subscription> {
    return resume(this.deps, ctx, id);
  }

  resumeDue(ctx: Ctx, now: Date, limit: number): Promise<number> {
    return resumeDue(this.deps, ctx, now, limit);
  }

  changePlan(ctx: Ctx, input: ChangePlanInput, by: "customer" | "merchant"): Promise<Subscription> {
    return changePlan(this.deps, ctx, input, by);
  }

  cancellationPreview(ctx: Ctx, id: string): Promise<CancellationPreview> {
    return cancellationPreview(this.deps, ctx, id);
  }

  finishRefund(ctx: Ctx, id: string): Promise<boolean> {
    return finishRefund(this.deps, ctx, id);
  }

  finishClaimedRefunds(ctx: Ctx, limit: number): Promise<number> {
    return finishClaimedRefunds(this.deps, ctx, limit);
  }

  revokeAtIamport(ctx: Ctx, customerUid: string, rows: Payment[]): Promise<Map<string, AtIamport>> {
    return revokeAtIamport(this.deps, ctx, customerUid, rows);
  }

  releaseCard(ctx: Ctx, customerUid: string, cancelSubscriptions: boolean): Promise<void> {
    return releaseCard(this.deps, ctx, customerUid, cancelSubscriptions);
  }

  revokeOrphans(ctx: Ctx, limit: number): Promise<number> {
    return revokeOrphans(this.deps, ctx, limit);
  }

  expireCanceledAtPeriodEnd(ctx: Ctx, now: Date): Promise<number> {
    return expireCanceledAtPeriodEnd(ctx, now);
  }

  consentToTrialConversion(ctx: Ctx, id: string, by: "customer" | "merchant"): Promise<Subscription> {
    return consentToTrialConversion(this.deps, ctx, id, by);
  }

  endTrials(ctx: Ctx, now: Date, limit: number): Promise<number> {
    return endTrials(ctx, now, limit);
  }

  get(ctx: Ctx, id: string): Promise<Subscription | null> {
    return get(ctx, id);
  }

  getMany(ctx: Ctx, ids: readonly string[]): Promise<Subscription[]> {
    return getMany(ctx, ids);
  }

  list(ctx: Ctx, filter: { customerUid?: string | null; status?: SubscriptionStatus | null }, first: number, after?: string | null): Promise<Page<Subscription>> {
    return list(ctx, filter, first, after);
  }
}
