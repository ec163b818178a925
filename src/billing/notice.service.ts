import type { EntityManager } from "@mikro-orm/postgresql";
import { Card, Notice, Payment, PriceChange, Subscription } from "../db/entities";
import { PriceChangeStatus, SubscriptionStatus } from "../db/entities/enums";
import { answersClose, consentOpens } from "./domain/price-changes";
import type { NoticeKind } from "../db/entities/notice.entity";
import { claimNotice, dueChangeNotices, dueRenewalNotices, dueTrialNotices, setNoticeEvent, TRIAL_REF, type DueNotice } from "../db/repositories/notices";
import { subscriptionData } from "../events/present";
import { recordEvent } from "../events/record";
import type { EventType } from "../events/types";
import type { BillingDeps, Ctx } from "./context";
import { checkFirst } from "./payment.service";
import { consentWindowOpens } from "./subscriptions/trials";

const EVENT_OF: Record<NoticeKind, EventType> = {
  TRIAL_ENDING: "subscription.trial_ending",
  RENEWAL_UPCOMING: "subscription.renewal_upcoming",
  PRICE_CHANGE: "subscription.price_change_requested",
};

/**
 * Notices before charges (전자상거래법 §13⑥, 여신전문금융업감독규정): when one
 * is due, reconciliation records it and its event together, in one
 * transaction; the notice's unique key makes that happen once across
 * replicas and runs, and a run after downtime sends what fell due meanwhile
 * while its charge is still ahead. The event carries what the message to the
 * customer must say; sending it (SMS, 알림톡) is the merchant's.
 */
export class NoticeService {
  constructor(private readonly deps: BillingDeps) {}

  /** Sends every notice due at `now` (Iamport's clock) that was not sent yet; returns how many it sent. */
  async sendDue(ctx: Ctx, now: Date, limit: number): Promise<number> {
    const { trialNoticeDays, renewalNoticeDays, priceChangeNoticeDays } = this.deps.config.lifecycle;
    const due: DueNotice[] = [...(await dueTrialNotices(ctx, now, trialNoticeDays, limit)), ...(await dueChangeNotices(ctx, now, priceChangeNoticeDays, limit))];
    if (renewalNoticeDays > 0) due.push(...(await dueRenewalNotices(ctx, now, renewalNoticeDays, limit)));
    let sent = 0;
    for (const n of due) if (await this.send(ctx, n, now)) sent += 1;
    return sent;
  }

  /** Records one notice and its event, unless the subscription moved on or another run sent it first. */
  private async send(ctx: Ctx, n: DueNotice, now: Date): Promise<boolean> {
    return ctx.em.fork().transactional(async (em) => {
      const sub = await em.findOne(Subscription, { id: n.subscriptionId }, { refresh: true });
      if (!sub || !stillAhead(sub, n, now)) return false;
      const noticeId = await claimNotice({ em }, n, now);
      if (!noticeId) return false;
      const data = await this.data(em, sub, n, noticeId, now);
      const eventId = await recordEvent(em, { type: EVENT_OF[n.kind], customerUid: sub.customerUid, subscriptionId: sub.id, data });
      await setNoticeEvent({ em }, noticeId, eventId);
      ctx.log.info({ subscriptionId: sub.id, kind: n.kind, ref: n.ref, dueAt: n.dueAt }, "notice sent");
      return true;
    });
  }

  /** What the message to the customer must say: the date, the amount, the payment method, and how to cancel. */
  private async data(em: EntityManager, sub: Subscription, n: DueNotice, noticeId: string, now: Date): Promise<Record<string, unknown>> {
    const card = await em.findOne(Card, { customerUid: sub.customerUid });
    const next = sub.nextMerchantUid ? await em.findOne(Payment, { merchantUid: sub.nextMerchantUid }) : null;
    const at = n.at.toISOString();
    const out: Record<string, unknown> = {
      notice: { id: noticeId, kind: n.kind, dueAt: n.dueAt.toISOString(), sentAt: now.toISOString() },
      subscription: subscriptionData(sub),
      chargeAt: at,
      // The charge as registered (its amount is what Iamport will take), else the subscription's.
      amount: next?.amount ?? sub.amount,
      currency: "KRW",
      paymentMethod: card ? { cardName: card.cardName ?? null, cardNumberMasked: card.cardNumberMasked ?? null } : null,
      cancel: {
        how: `cancelSubscription(input: { id: "${sub.id}" }) with the customer's token or a merchant key, before ${at}: nothing is charged then`,
        mutation: "cancelSubscription",
        subscriptionId: sub.id,
        before: at,
      },
    };
    if (n.kind === "TRIAL_ENDING") {
      out.trialEnd = at;
      out.consent = {
        required: this.deps.config.lifecycle.trialConversionConsent === "required",
        givenAt: sub.conversionConsentAt ? sub.conversionConsentAt.toISOString() : null,
        windowOpensAt: consentWindowOpens(n.at).toISOString(),
        how: `consentToTrialConversion(subscriptionId: "${sub.id}") before ${at}; without it the subscription ends then and nothing is charged`,
      };
    }
    if (n.kind === "PRICE_CHANGE") {
      const change = await em.findOneOrFail(PriceChange, { id: n.ref });
      const increase = change.newAmount > change.oldAmount;
      out.amount = change.newAmount;
      out.oldAmount = change.oldAmount;
      out.newAmount = change.newAmount;
      out.priceChange = { id: change.id, status: change.status, effectiveAt: at };
      out.consent = {
        required: increase,
        givenAt: increase && change.status === PriceChangeStatus.ACCEPTED && change.respondedAt ? change.respondedAt.toISOString() : null,
        windowOpensAt: increase ? consentOpens(change.effectiveAt).toISOString() : null,
        answersCloseAt: increase ? answersClose(change.effectiveAt).toISOString() : null,
        how: increase
          ? `respondToPriceChange(id: "${change.id}", accept: true) between ${consentOpens(change.effectiveAt).toISOString()} and ${answersClose(change.effectiveAt).toISOString()}; without it the subscription ends with the last period at the old price`
          : "none needed: the price goes down",
      };
    }
    return out;
  }

  /**
   * A subscription's notices, newest due first: those sent, and the next
   * ones still to go out (sentAt null) ahead of them.
   */
  async list(ctx: Ctx, sub: Subscription, first: number | null | undefined): Promise<Notice[]> {
    const limit = checkFirst(first);
    const sent = await ctx.em.find(Notice, { subscriptionId: sub.id }, { orderBy: { dueAt: "desc", id: "desc" }, limit });
    const has = (kind: NoticeKind, ref: string) => sent.some((x) => x.kind === kind && x.ref === ref);
    const upcoming: Notice[] = [];
    const { trialNoticeDays, renewalNoticeDays } = this.deps.config.lifecycle;
    const pending = (kind: NoticeKind, ref: string, at: Date, days: number) =>
      Object.assign(new Notice(), { id: `${sub.id}:${kind}:${ref}`, kind, subscriptionId: sub.id, ref, dueAt: new Date(at.getTime() - days * 86_400_000), sentAt: null });
    if (sub.status === SubscriptionStatus.TRIALING && sub.trialEnd && !has("TRIAL_ENDING", TRIAL_REF)) {
      upcoming.push(pending("TRIAL_ENDING", TRIAL_REF, sub.trialEnd, trialNoticeDays));
    }
    const ref = `p${sub.currentPeriod + 1}`;
    if (renewalNoticeDays > 0 && renewalNotified(sub) && sub.nextPaymentAt && !has("RENEWAL_UPCOMING", ref)) {
      upcoming.push(pending("RENEWAL_UPCOMING", ref, sub.nextPaymentAt, renewalNoticeDays));
    }
    return [...upcoming, ...sent].slice(0, limit);
  }
}

/** Renewals that get a notice: of a live monthly or yearly subscription past its first period, not ending. */
function renewalNotified(sub: Subscription): boolean {
  return sub.status === SubscriptionStatus.ACTIVE && !sub.cancelAtPeriodEnd && sub.currentPeriod >= 1 && (sub.interval === "MONTH" || sub.interval === "YEAR");
}

/** Whether what a due notice announces is still ahead, as the subscription is now (read in the notice's transaction). */
function stillAhead(sub: Subscription, n: DueNotice, now: Date): boolean {
  if (n.at.getTime() <= now.getTime()) return false;
  if (n.kind === "TRIAL_ENDING") return sub.status === SubscriptionStatus.TRIALING && sub.trialEnd?.getTime() === n.at.getTime();
  if (n.kind === "RENEWAL_UPCOMING") return renewalNotified(sub) && n.ref === `p${sub.currentPeriod + 1}` && sub.nextPaymentAt?.getTime() === n.at.getTime();
  return sub.status !== SubscriptionStatus.CANCELED && !sub.cancelAtPeriodEnd;
}
