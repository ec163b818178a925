import { UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { Payment, Plan, PriceChange, Subscription } from "../db/entities";
import { PaymentKind, PaymentStatus, PriceChangeStatus, SubscriptionStatus } from "../db/entities/enums";
import { lockBillingRows } from "../db/repositories/billing-locks";
import {
  acceptedPlansUnapplied,
  cancelChangesOfEndedSubscriptions,
  lockChange,
  openChange,
  openChanges,
  refusedUnapplied,
  unansweredBefore,
} from "../db/repositories/price-changes";
import { BadUserInputError, ConflictError, NotFoundError } from "../errors";
import { randomId, type BillingDeps, type Ctx } from "./context";
import { ANSWER_MARGIN_MS, answerCounts, effectiveRenewal, endReason } from "./domain/price-changes";
import { planTerms } from "./domain/plans";
import { iamportNow, type Settlement } from "./settlement";
import type { SubscriptionService } from "./subscription.service";
import { checkAmount, checkUid } from "./validation";

export interface RequestPriceChangeInput {
  subscriptionId: string;
  newAmount: number;
  effectiveAt?: Date | null;
}

/**
 * Price changes of subscriptions (전자상거래법 §13⑥, 시행령 §20-2): an
 * increase waits for the customer's consent, a decrease is accepted at once.
 * An accepted change gives its renewal and the later ones the new amount:
 * when that renewal is already registered with Iamport at the old amount,
 * the registration is revoked (no lock held), the claim is renewed at the new
 * amount under the locks, and registered again through the executor's claim
 * path; otherwise the executor's claim of that renewal takes the new amount.
 * A declined or unanswered increase ends the subscription with the last
 * period at the old price, through cancelSubscription's path.
 */
export class PriceChangeService {
  constructor(
    private readonly deps: BillingDeps,
    private readonly settlement: Settlement,
    private readonly subscriptions: SubscriptionService,
  ) {}

  async request(ctx: Ctx, input: RequestPriceChangeInput): Promise<PriceChange> {
    const subscriptionId = checkUid("subscriptionId", input.subscriptionId);
    const newAmount = checkAmount("newAmount", input.newAmount, this.deps.config.maxAmount);
    const now = await iamportNow(this.deps);
    let change: PriceChange;
    try {
      change = await ctx.em.transactional(async (em) => {
        const {
          subscriptions: [sub],
        } = await lockBillingRows(em, null, [subscriptionId]);
        if (!sub) throw new NotFoundError(`Subscription ${subscriptionId}`);
        if (sub.status !== SubscriptionStatus.ACTIVE || sub.cancelAtPeriodEnd || sub.currentPeriod < 1) {
          throw new BadUserInputError("subscriptionId", `names a subscription that is not renewing (${sub.status}${sub.cancelAtPeriodEnd ? ", ending at its period's end" : ""})`);
        }
        if (newAmount === sub.amount) throw new BadUserInputError("newAmount", `is the current amount (${sub.amount})`);
        const c = await openPriceChange(em, sub, { newAmount, effectiveAt: input.effectiveAt ?? null, planCode: null }, now, this.deps.config.billingTimeZone);
        await em.flush();
        return c;
      });
    } catch (err) {
      if (err instanceof UniqueConstraintViolationException) throw new ConflictError(`Subscription ${subscriptionId} already has a price change in flight`);
      throw err;
    }
    if (change.status === PriceChangeStatus.ACCEPTED) await this.applyAccepted(ctx, change.id);
    return ctx.em.findOneOrFail(PriceChange, { id: change.id }, { refresh: true });
  }

  /**
   * The customer's answer (`by`: its own token, or a merchant key recording
   * it). Answers count until a day before the change's renewal; a consent only
   * within the 30 days before it. Answering the same again changes nothing.
   */
  async respond(ctx: Ctx, id: string, accept: boolean, by: "customer" | "merchant"): Promise<PriceChange> {
    const changeId = checkUid("id", id);
    const found = await ctx.em.findOne(PriceChange, { id: changeId });
    if (!found) throw new NotFoundError(`Price change ${id}`);
    const now = await iamportNow(this.deps);
    const answered = await ctx.em.transactional(async (em): Promise<boolean> => {
      await lockBillingRows(em, null, [found.subscriptionId]);
      const change = (await lockChange(em, changeId))!;
      const wanted = accept ? PriceChangeStatus.ACCEPTED : PriceChangeStatus.DECLINED;
      if (change.status === wanted) return false;
      if (change.status !== PriceChangeStatus.PENDING) throw new BadUserInputError("id", `names a price change that is already ${change.status}`);
      const counts = answerCounts(change.effectiveAt, accept, now);
      if (!counts.ok) throw new BadUserInputError("id", `names a price change whose answer ${counts.message}`);
      change.status = wanted;
      change.respondedAt = now;
      change.respondedBy = by;
      await em.flush();
      return true;
    });
    if (answered && accept) await this.applyAccepted(ctx, changeId);
    if (answered && !accept) await this.endBefore(ctx, changeId);
    return ctx.em.findOneOrFail(PriceChange, { id: changeId }, { refresh: true });
  }

  /**
   * The merchant withdraws a change the customer has not answered: CANCELED,
   * and nothing else changes (a change waiting for its answer has changed
   * nothing at Iamport; its notice, when not sent yet, is not sent). An
   * answered change stands: an accepted one is charged, a refused one ends the
   * subscription. Withdrawing it again answers it as it is.
   */
  async withdraw(ctx: Ctx, id: string): Promise<PriceChange> {
    const changeId = checkUid("id", id);
    const found = await ctx.em.findOne(PriceChange, { id: changeId });
    if (!found) throw new NotFoundError(`Price change ${id}`);
    const now = await iamportNow(this.deps);
    await ctx.em.transactional(async (em) => {
      await lockBillingRows(em, null, [found.subscriptionId]);
      const change = (await lockChange(em, changeId))!;
      if (change.status === PriceChangeStatus.CANCELED) return;
      if (change.status !== PriceChangeStatus.PENDING) {
        throw new BadUserInputError("id", `names a price change that is already ${change.status}: only one still waiting for the customer's answer can be withdrawn`);
      }
      change.status = PriceChangeStatus.CANCELED;
      change.respondedAt = now;
      change.respondedBy = "withdrawn";
      await em.flush();
    });
    return ctx.em.findOneOrFail(PriceChange, { id: changeId }, { refresh: true });
  }

  /**
   * Reconciliation: changes still unanswered when answers close (a day before
   * their renewal) expire, and their subscriptions end with the last period
   * at the old price. Changes in flight at subscriptions that ended meanwhile are CANCELED.
   */
  async expireUnanswered(ctx: Ctx, now: Date, limit: number): Promise<number> {
    await cancelChangesOfEndedSubscriptions(ctx, now);
    const due = await unansweredBefore(ctx.em, now, ANSWER_MARGIN_MS, limit);
    let expired = 0;
    for (const { id, subscriptionId } of due) {
      const moved = await ctx.em.fork().transactional(async (em) => {
        const {
          subscriptions: [sub],
        } = await lockBillingRows(em, null, [subscriptionId]);
        const change = (await lockChange(em, id))!;
        if (change.status !== PriceChangeStatus.PENDING || change.effectiveAt.getTime() - ANSWER_MARGIN_MS > now.getTime()) return false;
        change.status = sub?.status === SubscriptionStatus.CANCELED ? PriceChangeStatus.CANCELED : PriceChangeStatus.EXPIRED;
        change.respondedAt = now;
        change.respondedBy = "expiry";
        await em.flush();
        return change.status === PriceChangeStatus.EXPIRED;
      });
      if (moved) expired += 1;
    }
    // Refused changes whose subscription is not set to end yet: those just expired, and any whose cancellation
    // could not reach Iamport before (endBefore is a no-op until their last old-price period is the current one).
    for (const { id } of await refusedUnapplied(ctx.em, limit)) await this.endBefore(ctx, id);
    return expired;
  }

  /**
   * Reconciliation: accepted changes that carry a plan and whose renewal was
   * claimed (at the old plan) after the consent are applied to it now.
   * Returns how many were applied.
   */
  async applyAcceptedPlans(ctx: Ctx, limit: number): Promise<number> {
    let applied = 0;
    for (const { id } of await acceptedPlansUnapplied(ctx.em, limit)) if (await this.applyPlan(ctx, id)) applied += 1;
    return applied;
  }

  /**
   * The changes in flight (waiting for an answer, or accepted and not applied
   * yet) at these subscriptions, for Subscription.pendingPriceChange: a list's rows in one statement.
   */
  async pendingForMany(ctx: Ctx, subscriptionIds: readonly string[]): Promise<PriceChange[]> {
    return subscriptionIds.length ? openChanges(ctx.em, subscriptionIds) : [];
  }

  async get(ctx: Ctx, id: string): Promise<PriceChange | null> {
    return ctx.em.findOne(PriceChange, { id: checkUid("id", id) });
  }

  /**
   * A declined or expired change: when the last period at the old price is
   * the current one, the subscription is canceled at its end now (revoking the
   * renewal registered at the old amount); otherwise the claim of the
   * change's renewal ends it then (Settlement).
   */
  private async endBefore(ctx: Ctx, changeId: string): Promise<void> {
    const change = await ctx.em.findOneOrFail(PriceChange, { id: changeId }, { refresh: true });
    const sub = await ctx.em.findOneOrFail(Subscription, { id: change.subscriptionId }, { refresh: true });
    if (change.appliedAt || sub.status === SubscriptionStatus.CANCELED || sub.currentPeriod < change.effectivePeriod - 1) return;
    await this.subscriptions.cancel(ctx, { id: sub.id, atPeriodEnd: true, reason: endReason(change) });
    await ctx.em.nativeUpdate(PriceChange, { id: changeId, appliedAt: null }, { appliedAt: new Date() });
  }

  /** An accepted change: one that carries a plan moves the subscription to it; one of the amount alone follows its renewal. */
  private async applyAccepted(ctx: Ctx, changeId: string): Promise<void> {
    const change = await ctx.em.findOneOrFail(PriceChange, { id: changeId }, { refresh: true });
    if (change.planCode) await this.applyPlan(ctx, changeId);
    else await this.applyToRegistered(ctx, changeId);
  }

  /**
   * An accepted change that carries a plan, applied to the renewal it
   * starts at (or a later one) once that renewal is claimed: the subscription
   * takes the plan's terms (name, plan, amount, tax-free and VAT parts), the
   * claim takes them too, and the change is applied, through
   * replaceClaimedRenewal. Before the renewal is claimed nothing happens
   * (the renewals before it are charged at the old plan), and reconciliation
   * applies it after the claim; a renewal Iamport already ran at the old plan
   * leaves it for the next one. Returns whether it was applied.
   */
  private async applyPlan(ctx: Ctx, changeId: string): Promise<boolean> {
    const change = await ctx.em.findOneOrFail(PriceChange, { id: changeId }, { refresh: true });
    if (!change.planCode || change.status !== PriceChangeStatus.ACCEPTED || change.appliedAt) return false;
    const claimed = await ctx.em.findOne(
      Payment,
      { subscription: change.subscriptionId, period: { $gte: change.effectivePeriod }, kind: PaymentKind.SCHEDULE, status: { $in: [PaymentStatus.SCHEDULED, PaymentStatus.PENDING] } },
      { orderBy: { period: "desc", attempt: "desc" }, refresh: true },
    );
    if (!claimed) return false;
    return this.replaceClaimedRenewal(ctx, change, claimed, {
      terms: "plan",
      waits: () => true,
      write: async (em, r, sub, c) => {
        const plan = await em.findOneOrFail(Plan, { code: c.planCode! });
        Object.assign(sub, planTerms(plan));
        Object.assign(r, { name: sub.name, amount: sub.amount, taxFreeAmount: sub.taxFreeAmount, vatAmount: sub.vatAmount ?? null });
        c.appliedAt = new Date();
      },
    });
  }

  /**
   * An accepted change whose renewal is already claimed at the old amount:
   * the claim takes the new amount, through replaceClaimedRenewal. A renewal
   * Iamport already ran keeps its amount; the change then starts with the next claim.
   */
  private async applyToRegistered(ctx: Ctx, changeId: string): Promise<void> {
    const change = await ctx.em.findOneOrFail(PriceChange, { id: changeId }, { refresh: true });
    const row = await ctx.em.findOne(Payment, { subscription: change.subscriptionId, period: change.effectivePeriod, attempt: 1 }, { refresh: true });
    if (!row || change.appliedAt || row.amount === change.newAmount || (row.status !== PaymentStatus.SCHEDULED && row.status !== PaymentStatus.PENDING)) return;
    await this.replaceClaimedRenewal(ctx, change, row, {
      terms: "price",
      // Already at the new amount: another answer's replacement got there first.
      waits: (r, c) => r.amount !== c.newAmount,
      // The subscription keeps its amount until this renewal is settled: the claim that follows it (the next
      // period, or a retry of this one) applies the change (Settlement), so the amount shown is the price in force.
      write: (_em, r, _sub, c) => {
        r.amount = c.newAmount;
      },
    });
  }

  /**
   * The one way an accepted change replaces a renewal claimed (and maybe
   * registered with Iamport) at the old terms: Iamport's registration is
   * revoked first, with no lock held; then, under the billing locks (the
   * claim, the subscription) and the change's, when the change is still
   * accepted and unapplied, the claim still open and `waits` for it, and the
   * subscription has not ended meanwhile, `step.write` gives the claim (and
   * whatever else) the new terms, the claim is PENDING again, and after the
   * commit the executor registers it with Iamport under its merchant_uid.
   * A renewal Iamport already ran is left as it is. Returns whether the claim was replaced.
   */
  private async replaceClaimedRenewal(
    ctx: Ctx,
    change: PriceChange,
    claimed: Payment,
    step: {
      /** What changes, for the logs: "plan" or "price". */
      terms: string;
      /** Whether the locked claim still waits for this change. */
      waits: (claim: Payment, change: PriceChange) => boolean;
      write: (em: EntityManager, claim: Payment, sub: Subscription, change: PriceChange) => Promise<void> | void;
    },
  ): Promise<boolean> {
    const { id: changeId, subscriptionId } = change;
    // Revoked, or never registered: nothing of it is left at Iamport to charge the old terms.
    if (claimed.status === PaymentStatus.SCHEDULED && (await this.subscriptions.revokeAtIamport(ctx, claimed.customerUid!, [claimed])).get(claimed.merchantUid)?.kind === "ran") {
      ctx.log.warn({ subscriptionId, merchantUid: claimed.merchantUid }, `renewal ran at the old ${step.terms} before the ${step.terms} change could replace it; the change starts with the next renewal`);
      return false;
    }
    const reclaimed = await ctx.em.fork().transactional(async (em) => {
      const {
        payments: [r],
        subscriptions: [sub],
      } = await lockBillingRows(em, { id: claimed.id }, [subscriptionId]);
      const c = (await lockChange(em, changeId))!;
      if (!r || c.appliedAt || c.status !== PriceChangeStatus.ACCEPTED || !step.waits(r, c)) return false;
      if (sub.status === SubscriptionStatus.CANCELED || sub.status === SubscriptionStatus.UNPAID) {
        // Ended meanwhile: the revoked registration stays revoked.
        if (r.status === PaymentStatus.SCHEDULED) r.status = PaymentStatus.REVOKED;
        return false;
      }
      if (r.status !== PaymentStatus.SCHEDULED && r.status !== PaymentStatus.PENDING) return false;
      await step.write(em, r, sub, c);
      r.status = PaymentStatus.PENDING;
      r.checkedAt = new Date();
      await em.flush();
      return true;
    });
    if (!reclaimed) return false;
    try {
      await this.settlement.registerUnregistered(ctx, claimed.id);
    } catch (err) {
      ctx.log.warn({ merchantUid: claimed.merchantUid, err: (err as Error).message }, `renewal at the new ${step.terms} not registered yet; reconciliation will retry`);
    }
    return true;
  }
}

/** What a new price change asks for: the amount, optionally the plan it carries, and the renewal it starts at (null: the first one it may). */
export interface PriceChangeTerms {
  newAmount: number;
  planCode: string | null;
  effectiveAt: Date | null;
}

/**
 * Opens a price change of `sub` (locked by the caller, in its transaction):
 * CONFLICT naming the change already in flight, BAD_USER_INPUT when no
 * renewal fits; an increase waits for the customer's answer, a decrease is
 * accepted at once. Persisted for the caller's flush.
 */
export async function openPriceChange(em: EntityManager, sub: Subscription, terms: PriceChangeTerms, now: Date, timeZone: string): Promise<PriceChange> {
  const open = await openChange(em, sub.id);
  if (open) throw inFlightConflict(sub.id, open);
  const increase = terms.newAmount > sub.amount;
  const when = effectiveRenewal(sub, now, increase, terms.effectiveAt, timeZone);
  if (!when.ok) throw new BadUserInputError("effectiveAt", when.message);
  return em.create(PriceChange, {
    id: `pc${Date.now().toString(36).padStart(9, "0")}${randomId(5)}`,
    subscriptionId: sub.id,
    oldAmount: sub.amount,
    newAmount: terms.newAmount,
    planCode: terms.planCode,
    effectiveAt: when.at,
    effectivePeriod: when.period,
    // A decrease needs no consent.
    status: increase ? PriceChangeStatus.PENDING : PriceChangeStatus.ACCEPTED,
    requestedAt: now,
    respondedAt: increase ? null : now,
    respondedBy: increase ? null : "not_needed",
  });
}

/** CONFLICT naming the change in flight at a subscription (one at a time). */
export function inFlightConflict(subscriptionId: string, open: PriceChange): ConflictError {
  return new ConflictError(
    `Subscription ${subscriptionId} already has a price change in flight: ${open.id} (${open.status}${open.planCode ? `, to plan ${open.planCode}` : ""}, ${open.oldAmount} to ${open.newAmount} won from ${open.effectiveAt.toISOString()})`,
    { priceChangeId: open.id },
  );
}
