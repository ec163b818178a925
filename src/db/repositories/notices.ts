import type { NoticeKind } from "../entities/notice.entity";
import { query, type Scope } from "../tx";

/** A notice that is due and not yet sent: its subscription, its subject and when it was due. */
export interface DueNotice {
  subscriptionId: string;
  kind: NoticeKind;
  ref: string;
  /** When the charge (or the change) it announces happens. */
  at: Date;
  dueAt: Date;
}

/** The trial's notice has one subject per subscription: a trial ends once. */
export const TRIAL_REF = "trial";

const DUE_TRIALS_SQL = `select s."id" as "subscriptionId", s."trial_end" as "at"
  from "subscriptions" s
 where s."status" = 'TRIALING' and s."trial_end" > ? and s."trial_end" <= ?
   and not exists (select 1 from "notices" n where n."subscription_id" = s."id" and n."kind" = 'TRIAL_ENDING' and n."ref" = ?)
 order by s."trial_end" limit ?`;

/**
 * Trials ending within `days` of `now` (and not yet ended) whose notice was
 * not sent: however long after its due time the sweep runs, as long as it is
 * still ahead of the trial's end.
 */
export async function dueTrialNotices(scope: Scope, now: Date, days: number, limit: number): Promise<DueNotice[]> {
  const rows = await query<{ subscriptionId: string; at: Date }>(scope, DUE_TRIALS_SQL, [now, new Date(now.getTime() + days * 86_400_000), TRIAL_REF, limit]);
  return rows.map((r) => ({ ...r, kind: "TRIAL_ENDING", ref: TRIAL_REF, dueAt: new Date(r.at.getTime() - days * 86_400_000) }));
}

const DUE_RENEWALS_SQL = `select s."id" as "subscriptionId", s."next_payment_at" as "at", 'p' || (s."current_period" + 1) as "ref"
  from "subscriptions" s
 where s."status" = 'ACTIVE' and not s."cancel_at_period_end" and s."current_period" >= 1 and s."interval" in ('MONTH', 'YEAR')
   and s."next_payment_at" > ? and s."next_payment_at" <= ?
   and not exists (select 1 from "notices" n where n."subscription_id" = s."id" and n."kind" = 'RENEWAL_UPCOMING' and n."ref" = 'p' || (s."current_period" + 1))
 order by s."next_payment_at" limit ?`;

/**
 * Renewals of monthly and yearly subscriptions due within `days` of `now`
 * whose notice was not sent; the subject is the period the renewal pays for,
 * so each renewal has one notice (its retries none of their own).
 */
export async function dueRenewalNotices(scope: Scope, now: Date, days: number, limit: number): Promise<DueNotice[]> {
  const rows = await query<{ subscriptionId: string; at: Date; ref: string }>(scope, DUE_RENEWALS_SQL, [now, new Date(now.getTime() + days * 86_400_000), limit]);
  return rows.map((r) => ({ ...r, kind: "RENEWAL_UPCOMING", dueAt: new Date(r.at.getTime() - days * 86_400_000) }));
}

const CLAIM_SQL = `insert into "notices" ("kind", "subscription_id", "ref", "due_at", "sent_at")
values (?, ?, ?, ?, ?) on conflict ("subscription_id", "kind", "ref") do nothing returning "id"`;

/**
 * Records a notice as sent, in the caller's transaction; null when it was
 * already recorded (another replica, an earlier run): the caller then sends
 * nothing. The unique key decides, so each notice is sent once.
 */
export async function claimNotice(scope: Scope, n: DueNotice, sentAt: Date): Promise<string | null> {
  const [row] = await query<{ id: string }>(scope, CLAIM_SQL, [n.kind, n.subscriptionId, n.ref, n.dueAt, sentAt]);
  return row?.id ?? null;
}

/** Links a notice to the event that carried it (same transaction as the claim). */
export async function setNoticeEvent(scope: Scope, noticeId: string, eventId: string): Promise<void> {
  await query(scope, `update "notices" set "event_id" = ? where "id" = ?`, [eventId, noticeId]);
}

const DUE_CHANGES_SQL = `select c."subscription_id" as "subscriptionId", c."effective_at" as "at", c."id" as "ref"
  from "price_changes" c
 where c."status" in ('PENDING', 'ACCEPTED') and c."effective_at" > ? and c."effective_at" <= ?
   and not exists (select 1 from "notices" n where n."subscription_id" = c."subscription_id" and n."kind" = 'PRICE_CHANGE' and n."ref" = c."id")
 order by c."effective_at" limit ?`;

/** Price changes (waiting for an answer, or accepted) taking effect within `days` of `now` whose notice was not sent; the subject is the change. */
export async function dueChangeNotices(scope: Scope, now: Date, days: number, limit: number): Promise<DueNotice[]> {
  const rows = await query<{ subscriptionId: string; at: Date; ref: string }>(scope, DUE_CHANGES_SQL, [now, new Date(now.getTime() + days * 86_400_000), limit]);
  return rows.map((r) => ({ ...r, kind: "PRICE_CHANGE", dueAt: new Date(r.at.getTime() - days * 86_400_000) }));
}

/** A sent notice as GraphQL shows it. */
export interface SentNoticeRow {
  id: string;
  kind: NoticeKind;
  subscriptionId: string;
  ref: string;
  dueAt: Date;
  sentAt: Date | null;
}

const LATEST_SQL = `select "id", "kind", "subscription_id" as "subscriptionId", "ref", "due_at" as "dueAt", "sent_at" as "sentAt"
  from (select n.*, row_number() over (partition by n."subscription_id" order by n."due_at" desc, n."id" desc) as "rank"
          from "notices" n where n."subscription_id" = any(?)) x
 where "rank" <= ?
 order by "subscription_id", "due_at" desc, "id" desc`;

/**
 * The latest `limit` notices of each of these subscriptions, newest due
 * first, in one statement (a list of subscriptions reads them together).
 */
export async function latestNotices(scope: Scope, subscriptionIds: readonly string[], limit: number): Promise<SentNoticeRow[]> {
  return query<SentNoticeRow>(scope, LATEST_SQL, [subscriptionIds, limit]);
}
