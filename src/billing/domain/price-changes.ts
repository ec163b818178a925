import { PriceChangeStatus, type BillingInterval } from "../../db/entities/enums";
import { boundary } from "./billing-dates";

/**
 * The rules of price changes (전자상거래법 §13⑥, 시행령 §20-2), as pure
 * functions: which renewal a change starts at, when answers count, and what a
 * claimed renewal charges. Nothing here reads the clock or the database.
 */

const DAY_MS = 86_400_000;
/** An increase starts at a renewal at least this far from its request, and consent counts only this close to it. */
export const PRICE_CHANGE_LEAD_DAYS = 30;
/**
 * Answers are taken until this long before the change's renewal: an
 * unanswered change then expires, and the renewal already registered with
 * Iamport at the old amount is revoked well before Iamport runs it.
 */
export const ANSWER_MARGIN_MS = DAY_MS;
/** How far ahead a change may be asked for. */
const MAX_AHEAD_MS = 3 * 366 * DAY_MS;

export interface RenewalFacts {
  anchorAt: Date;
  interval: BillingInterval;
  intervalCount: number;
  currentPeriod: number;
}

export type EffectiveRenewal = { ok: true; period: number; at: Date } | { ok: false; message: string };

/**
 * The renewal a change starts at: the first renewal at or after `requested`
 * (default: at least PRICE_CHANGE_LEAD_DAYS after `now`); an increase never
 * starts before that lead, so an earlier `requested` is refused for it.
 */
export function effectiveRenewal(sub: RenewalFacts, now: Date, increase: boolean, requested: Date | null, timeZone: string): EffectiveRenewal {
  const lead = new Date(now.getTime() + PRICE_CHANGE_LEAD_DAYS * DAY_MS);
  if (requested && increase && requested.getTime() < lead.getTime()) {
    return {
      ok: false,
      message: `is too early for an increase: it needs the customer's consent and ${PRICE_CHANGE_LEAD_DAYS} days' notice, so it starts at the earliest with the first renewal from ${lead.toISOString()} (omit effectiveAt for that one)`,
    };
  }
  if (requested && requested.getTime() > now.getTime() + MAX_AHEAD_MS) return { ok: false, message: "must be within three years" };
  const from = requested ?? lead;
  // Boundary k starts period k + 1: the first renewal is the start of period currentPeriod + 1.
  for (let k = Math.max(1, sub.currentPeriod); ; k++) {
    const at = boundary(sub.anchorAt, sub.interval, sub.intervalCount, k, timeZone);
    if (at.getTime() >= from.getTime() && at.getTime() > now.getTime()) return { ok: true, period: k + 1, at };
    if (at.getTime() > now.getTime() + MAX_AHEAD_MS) return { ok: false, message: "names no renewal within three years" };
  }
}

export type AnswerCheck = { ok: true } | { ok: false; message: string };

/** Whether an answer given at `now` counts: until ANSWER_MARGIN_MS before the renewal; a consent only within the lead before it. */
export function answerCounts(effectiveAt: Date, accept: boolean, now: Date): AnswerCheck {
  const deadline = effectiveAt.getTime() - ANSWER_MARGIN_MS;
  if (now.getTime() >= deadline) {
    return { ok: false, message: `came after answers closed (${new Date(deadline).toISOString()}, a day before the renewal at ${effectiveAt.toISOString()})` };
  }
  const opens = consentOpens(effectiveAt);
  if (accept && now.getTime() < opens.getTime()) {
    return {
      ok: false,
      message: `is too early: consent to a price increase counts only when given within the ${PRICE_CHANGE_LEAD_DAYS} days before it takes effect (전자상거래법 §13⑥), from ${opens.toISOString()}; ask the customer again then`,
    };
  }
  return { ok: true };
}

/** The first moment consent to a change that takes effect at `effectiveAt` counts. */
export function consentOpens(effectiveAt: Date): Date {
  return new Date(effectiveAt.getTime() - PRICE_CHANGE_LEAD_DAYS * DAY_MS);
}

/** The moment an unanswered change expires. */
export function answersClose(effectiveAt: Date): Date {
  return new Date(effectiveAt.getTime() - ANSWER_MARGIN_MS);
}

/** A change met when the renewal it starts at (or a later one) is claimed. */
export interface ChangeFacts {
  status: PriceChangeStatus;
  oldAmount: number;
  newAmount: number;
  effectiveAt: Date;
}

export type ClaimStep =
  /** The renewal (and those after it) charges the new amount. */
  | { kind: "new-amount"; amount: number }
  /** Refused or unanswered: nothing is claimed, and the subscription ends with the period before it. */
  | { kind: "end"; reason: string };

/** What the claim of a renewal at or after an accepted, declined or expired change does. */
export function claimStep(change: ChangeFacts): ClaimStep {
  if (change.status === PriceChangeStatus.ACCEPTED) return { kind: "new-amount", amount: change.newAmount };
  return { kind: "end", reason: endReason(change) };
}

/** Why a subscription ends before a change the customer did not accept. */
export function endReason(change: ChangeFacts): string {
  const how = change.status === PriceChangeStatus.DECLINED ? "declined" : "did not accept in time";
  return `the customer ${how} the price change from ${change.oldAmount} to ${change.newAmount} won at the renewal of ${change.effectiveAt.toISOString()}: it ends with the last period at the old price`;
}
