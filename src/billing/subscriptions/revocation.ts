import { Payment, Subscription } from "../../db/entities";
import { PaymentKind, PaymentStatus, SubscriptionStatus } from "../../db/entities/enums";
import { lockBillingRows } from "../../db/repositories/billing-locks";
import { IamportNotFoundError, IamportRefusedError, type ProviderPayment, type ProviderSchedule } from "../../provider/port";
import { upstreamError, withEm, type Ctx } from "../context";
import { OPEN_CHARGE_STATUSES } from "../domain/transitions";
import type { AfterCommit } from "../settlement";
import { findAtIamport } from "./charge";
import type { SubscriptionDeps } from "./deps";

/** What Iamport says of a charge a revocation was asked for (revokeAtIamport). */
export type AtIamport =
  | { kind: "revoked" }
  | { kind: "never-registered" }
  | { kind: "ran"; impUid: string | null; answer?: ProviderPayment; askedAt?: Date };

/** The subscription's charges that may still run at Iamport (as read now, with no lock). */
function openCharges(ctx: Ctx, subscriptionId: string): Promise<Payment[]> {
  return ctx.em.find(
    Payment,
    { subscription: subscriptionId, status: { $in: OPEN_CHARGE_STATUSES }, kind: PaymentKind.SCHEDULE },
    { orderBy: { id: "asc" }, refresh: true },
  );
}

/**
 * Asks Iamport to revoke `rows`, with no lock held, and looks up those it
 * did not revoke: never registered (a claim whose registration has not
 * reached Iamport: its registrar unschedules it when it finds the row
 * revoked), registered after the revocation was sent (revoked once more),
 * or already run (their payment is fetched, for settleRan).
 */
export async function revokeAtIamport(deps: SubscriptionDeps, ctx: Ctx, customerUid: string, rows: Payment[]): Promise<Map<string, AtIamport>> {
  const out = new Map<string, AtIamport>();
  if (rows.length === 0) return out;
  const opts = { requestId: ctx.requestId };
  const unschedule = async (uids: string[]): Promise<Set<string>> => {
    try {
      const result = await deps.provider.revoke(customerUid, uids, opts);
      return new Set(result.filter((s) => s.schedule_status === "revoked").map((s) => s.merchant_uid));
    } catch (err) {
      // Refused: nothing left to revoke (already ran, or never registered); each one is looked up.
      if (!(err instanceof IamportRefusedError || err instanceof IamportNotFoundError)) throw upstreamError(err, "unschedule");
      return new Set();
    }
  };
  const lookUp = async (uid: string): Promise<ProviderSchedule | null> => {
    try {
      return await deps.provider.getSchedule(uid, opts);
    } catch (err) {
      if (err instanceof IamportNotFoundError) return null;
      throw upstreamError(err, `schedule ${uid}`);
    }
  };
  const revoked = await unschedule(rows.map((p) => p.merchantUid));
  const late: string[] = [];
  for (const p of rows) {
    if (revoked.has(p.merchantUid)) {
      out.set(p.merchantUid, { kind: "revoked" });
      continue;
    }
    const s = await lookUp(p.merchantUid);
    if (!s) out.set(p.merchantUid, { kind: "never-registered" });
    else if (s.schedule_status === "revoked") out.set(p.merchantUid, { kind: "revoked" });
    else if (s.schedule_status === "scheduled") late.push(p.merchantUid);
    else out.set(p.merchantUid, { kind: "ran", impUid: s.imp_uid });
  }
  if (late.length > 0) {
    // Registered after the revocation was sent (a registration that was still in flight): revoke it now.
    const again = await unschedule(late);
    for (const uid of late) {
      const s = again.has(uid) ? null : await lookUp(uid);
      if (again.has(uid) || s?.schedule_status === "revoked") out.set(uid, { kind: "revoked" });
      else out.set(uid, { kind: "ran", impUid: s?.imp_uid ?? null });
    }
  }
  for (const [uid, o] of out) {
    if (o.kind !== "ran") continue;
    ctx.log.warn({ merchantUid: uid }, "schedule ran before it could be revoked");
    const askedAt = new Date();
    try {
      o.answer = (await findAtIamport(deps, ctx, uid)) ?? undefined;
      o.askedAt = askedAt;
    } catch (err) {
      ctx.log.warn({ merchantUid: uid, err: (err as Error).message }, "charge met by a cancellation could not be looked up; left to its webhook");
    }
  }
  return out;
}

/**
 * The one way a mutation takes a subscription's open renewal charges out
 * of Iamport's hands before changing it: they are revoked at Iamport first,
 * with no lock held; then, in one transaction under the billing locks (the
 * subscription and its open SCHEDULE charges), the revocations are
 * recorded and `step` runs with the locked charges (`open`) and those Iamport ran meanwhile (`ran`,
 * settled by `settleRan` when the step chooses). What settling those
 * leaves for after the commit (the next charge it claims, registered with
 * Iamport) runs after this transaction's commit, with no lock held, against
 * the rows as the step left them. Charges registered while Iamport was being
 * asked (a renewal's claim) are revoked after the commit, again with no lock held.
 */
export async function withOpenChargesRevoked<T>(
  deps: SubscriptionDeps,
  ctx: Ctx,
  sub: Subscription,
  step: (tx: Ctx, locked: Subscription, charges: { open: Payment[]; ran: Payment[]; settleRan: () => Promise<boolean> }) => Promise<T>,
): Promise<T> {
  const asked = await revokeAtIamport(deps, ctx, sub.customerUid, await openCharges(ctx, sub.id));
  const after: AfterCommit[] = [];
  const done = await ctx.em.transactional(async (em): Promise<{ result: T; late: Payment[] }> => {
    const tx = withEm(ctx, em);
    const {
      payments: open,
      subscriptions: [locked],
    } = await lockBillingRows(em, { subscription: sub.id, status: { $in: OPEN_CHARGE_STATUSES }, kind: PaymentKind.SCHEDULE }, [sub.id]);
    const { ran, late } = recordRevocations(open, asked);
    const result = await step(tx, locked, { open, ran, settleRan: () => settleRan(deps, tx, ran, asked, after) });
    return { result, late };
  });
  for (const work of after) await work(ctx);
  if (done.late.length > 0) await revokeStragglers(deps, ctx, sub.id, done.late);
  return done.result;
}

/**
 * Records what Iamport said of each open charge (locked by the caller):
 * revoked or never registered: REVOKED. Returns the charges that ran, to
 * be settled, and those registered after Iamport was asked (a renewal's
 * claim that reached Iamport meanwhile), to be revoked after the commit;
 * a claim still PENDING is REVOKED now, and its registrar unschedules it.
 */
function recordRevocations(open: Payment[], asked: Map<string, AtIamport>): { ran: Payment[]; late: Payment[] } {
  const ran: Payment[] = [];
  const late: Payment[] = [];
  const now = new Date();
  for (const p of open) {
    const o = asked.get(p.merchantUid);
    if (o?.kind === "ran") {
      if (o.impUid && !p.impUid) p.impUid = o.impUid;
      ran.push(p);
    } else if (o || p.status === PaymentStatus.PENDING) {
      p.status = PaymentStatus.REVOKED;
      p.checkedAt = now;
    } else {
      late.push(p);
    }
  }
  return { ran, late };
}

/** Revokes charges registered while a cancellation was asking Iamport, and records them REVOKED. */
async function revokeStragglers(deps: SubscriptionDeps, ctx: Ctx, subscriptionId: string, rows: Payment[]): Promise<void> {
  const sub = await ctx.em.findOneOrFail(Subscription, { id: subscriptionId }, { refresh: true });
  const asked = await revokeAtIamport(deps, ctx, sub.customerUid, rows);
  const after: AfterCommit[] = [];
  await ctx.em.transactional(async (em) => {
    const { payments: open } = await lockBillingRows(em, { id: { $in: rows.map((p) => p.id) }, status: { $in: OPEN_CHARGE_STATUSES } }, [subscriptionId]);
    const { ran } = recordRevocations(
      open.filter((p) => asked.has(p.merchantUid)),
      asked,
    );
    if (ran.length > 0) await settleRan(deps, withEm(ctx, em), ran, asked, after);
  });
  for (const work of after) await work(ctx);
}

/**
 * Settles charges Iamport ran (or may be running) before they could be
 * revoked, from their payments fetched by revokeAtIamport, through the
 * executor, in the caller's transaction, under the locks it holds; what each
 * settlement leaves for after the commit is added to `after`, for the caller
 * to run once it has committed. Returns true when one of them could not be
 * settled (Iamport has no payment for it yet, or could not be asked).
 */
async function settleRan(deps: SubscriptionDeps, ctx: Ctx, ran: Payment[], asked: Map<string, AtIamport>, after: AfterCommit[]): Promise<boolean> {
  let unsettled = false;
  for (const p of ran) {
    const o = asked.get(p.merchantUid);
    if (o?.kind === "ran" && o.answer) after.push((await deps.settlement.settleUnderLocks(ctx, o.answer, { askedAt: o.askedAt })).after);
    if (p.status === PaymentStatus.SCHEDULED || p.status === PaymentStatus.PENDING) unsettled = true;
  }
  return unsettled;
}

/**
 * Reconciliation's safety net: schedules still open (SCHEDULED or PENDING) at
 * subscriptions that can no longer be charged (CANCELED, UNPAID, PAUSED) are revoked
 * at Iamport as a cancellation revokes them (Iamport asked with no lock held,
 * its answers recorded under the locks). Returns how many
 * subscriptions were cleaned.
 */
export async function revokeOrphans(deps: SubscriptionDeps, ctx: Ctx, limit: number): Promise<number> {
  const rows = await ctx.em.find(
    Payment,
    {
      kind: PaymentKind.SCHEDULE,
      status: { $in: [PaymentStatus.SCHEDULED, PaymentStatus.PENDING] },
      subscription: { status: { $in: [SubscriptionStatus.CANCELED, SubscriptionStatus.UNPAID, SubscriptionStatus.PAUSED] } },
    },
    { limit, orderBy: { id: "asc" } },
  );
  const subs = [...new Set(rows.map((r) => r.subscription!.id))];
  const ended = (st: SubscriptionStatus) => st === SubscriptionStatus.CANCELED || st === SubscriptionStatus.UNPAID || st === SubscriptionStatus.PAUSED;
  for (const subId of subs) {
    const sub = await ctx.em.findOneOrFail(Subscription, { id: subId }, { refresh: true });
    if (!ended(sub.status)) continue;
    // Iamport with no lock held; what it said recorded under the locks. Charges that ran are left to their webhooks.
    const asked = await revokeAtIamport(deps, ctx, sub.customerUid, await openCharges(ctx, subId));
    await ctx.em.fork().transactional(async (em) => {
      const {
        payments: open,
        subscriptions: [locked],
      } = await lockBillingRows(em, { subscription: subId, status: { $in: OPEN_CHARGE_STATUSES }, kind: PaymentKind.SCHEDULE }, [subId]);
      if (ended(locked.status)) recordRevocations(open.filter((p) => asked.has(p.merchantUid)), asked);
    });
  }
  return subs.length;
}
