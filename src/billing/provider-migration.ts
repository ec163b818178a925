import type { Logger } from "pino";
import type { ProviderMigrationRepository, OpenScheduleRow } from "../db/repositories/provider-migration";
import { IamportNotFoundError, IamportRefusedError, type PaymentProvider, type ScheduleRequest } from "../provider/port";

export interface MigrationDeps {
  repo: ProviderMigrationRepository;
  v1: PaymentProvider;
  v2: PaymentProvider;
  logger: Logger;
}

export interface MigrationOptions {
  /** customer_uid → the V2 billing key PortOne's V1→V2 billing-key migration made of it. */
  mapping: Map<string, string>;
  /** false (default): only report what would be done. */
  apply: boolean;
  /** Charges due within this many seconds of V1's clock are left to run at V1 (their outcome is settled first). */
  marginSeconds?: number;
}

export type MigrationAction =
  | { kind: "map-key"; customerUid: string; billingKey: string }
  | { kind: "re-register"; customerUid: string }
  | { kind: "move-schedule"; customerUid: string; merchantUid: string; scheduledAt: Date }
  | { kind: "wait"; customerUid: string; merchantUid: string; scheduledAt: Date; reason: string };

export interface MigrationReport {
  applied: boolean;
  actions: MigrationAction[];
  /** What applying did, per customer or order: "ok", or why not. */
  results: { ref: string; outcome: string }[];
  /**
   * The earliest time of a charge moved to V2: the server should charge through
   * V2 by then. Until it does, the server (on V1, in migration mode) asks V2
   * about each moved charge and verifies V2's webhooks (src/provider/migration.ts),
   * but registers the next charge of a subscription at V1, which only a new
   * run of the command moves.
   */
  switchBy: Date | null;
}

const DEFAULT_MARGIN_SECONDS = 3600;

/**
 * Moves a merchant's cards and pending schedules from Iamport V1 to PortOne V2.
 * Cards: each ACTIVE V1 card gets the V2 billing key the mapping names for it
 * (PortOne's own migration of billing keys); a card without one must be
 * registered again by its customer, and nothing is moved while one is
 * missing. Schedules: each charge registered at V1 and due later than the
 * margin is revoked at V1 first, then registered at V2 under the same
 * merchant_uid and time, so it is charged once: never by both (V1's is
 * revoked before V2's exists) and never by neither (a failure leaves it
 * SCHEDULED in the database, and running the command again finds V1's
 * revoked and registers it at V2, or finds it there). Charges due within the
 * margin are left to run at V1: run the command again once they settled.
 * No provider call is made with a database lock held.
 */
export async function migrateV1ToV2(deps: MigrationDeps, opts: MigrationOptions): Promise<MigrationReport> {
  const margin = opts.marginSeconds ?? DEFAULT_MARGIN_SECONDS;
  const cards = await deps.repo.activeCards();
  const actions: MigrationAction[] = [];
  const unmapped = new Set<string>();
  for (const c of cards) {
    if (c.billing_key) continue;
    const key = opts.mapping.get(c.customer_uid);
    if (key) actions.push({ kind: "map-key", customerUid: c.customer_uid, billingKey: key });
    else {
      unmapped.add(c.customer_uid);
      actions.push({ kind: "re-register", customerUid: c.customer_uid });
    }
  }
  const v1Now = await deps.v1.serverNow();
  const open = await deps.repo.openSchedules();
  const moves: OpenScheduleRow[] = [];
  for (const row of open) {
    const at = new Date(row.scheduled_at);
    if (unmapped.has(row.customer_uid)) {
      actions.push({ kind: "wait", customerUid: row.customer_uid, merchantUid: row.merchant_uid, scheduledAt: at, reason: "the card has no V2 billing key yet" });
    } else if (at.getTime() / 1000 <= v1Now + margin) {
      actions.push({ kind: "wait", customerUid: row.customer_uid, merchantUid: row.merchant_uid, scheduledAt: at, reason: `due within ${margin} s at V1: left to run there` });
    } else {
      actions.push({ kind: "move-schedule", customerUid: row.customer_uid, merchantUid: row.merchant_uid, scheduledAt: at });
      moves.push(row);
    }
  }
  const earliest = moves.reduce<number | null>((m, r) => Math.min(m ?? Infinity, new Date(r.scheduled_at).getTime()), null);
  const report: MigrationReport = { applied: false, actions, results: [], switchBy: earliest === null ? null : new Date(earliest) };
  if (!opts.apply) return report;
  if (unmapped.size > 0) {
    throw new Error(`${unmapped.size} active card(s) have no V2 billing key in the mapping (${[...unmapped].slice(0, 5).join(", ")}): map them, or have their customers register again, first`);
  }
  report.applied = true;
  for (const a of actions) {
    if (a.kind !== "map-key") continue;
    const set = await deps.repo.setBillingKey(a.customerUid, a.billingKey);
    report.results.push({ ref: a.customerUid, outcome: set ? "ok: V2 billing key recorded" : "kept: a V2 billing key was already recorded" });
  }
  for (const row of moves) {
    report.results.push({ ref: row.merchant_uid, outcome: await moveSchedule(deps, row) });
  }
  return report;
}

/** Revokes the charge at V1, then registers it at V2 (see migrateV1ToV2). */
async function moveSchedule(deps: MigrationDeps, row: OpenScheduleRow): Promise<string> {
  const o = { requestId: `migrate-v2:${row.merchant_uid}` };
  // Registered at V2 by an earlier run: that run revoked it at V1 first.
  try {
    const atV2 = await deps.v2.getSchedule(row.merchant_uid, o);
    if (atV2.schedule_status === "scheduled") {
      await deps.repo.markHeldByV2(row.merchant_uid);
      return "ok: already registered at V2";
    }
  } catch (err) {
    if (!(err instanceof IamportNotFoundError)) return `not moved: V2 did not answer (${(err as Error).message}); run again`;
  }
  try {
    const revoked = await deps.v1.revoke(row.customer_uid, [row.merchant_uid], o);
    if (!revoked.some((s) => s.merchant_uid === row.merchant_uid)) {
      const s = await deps.v1.getSchedule(row.merchant_uid, o);
      if (s.schedule_status === "executed") return "kept at V1: it ran there meanwhile (its webhook or reconciliation settles it)";
      if (s.schedule_status !== "revoked") return `not moved: V1 still holds it (${s.schedule_status}); run again`;
    }
  } catch (err) {
    // Not at V1 (never registered there, or revoked by an earlier run whose V2 call failed).
    if (!(err instanceof IamportNotFoundError) && !(err instanceof IamportRefusedError)) return `not moved: V1 did not answer (${(err as Error).message}); run again`;
    try {
      const s = await deps.v1.getSchedule(row.merchant_uid, o);
      if (s.schedule_status === "executed") return "kept at V1: it ran there meanwhile (its webhook or reconciliation settles it)";
      if (s.schedule_status === "scheduled") return "not moved: V1 refused to revoke it; run again";
    } catch (e2) {
      if (!(e2 instanceof IamportNotFoundError)) return `not moved: V1 did not answer (${(e2 as Error).message}); run again`;
    }
  }
  // V1 no longer holds it: from here on, a server still on V1 asks V2 about it (src/provider/migration.ts).
  await deps.repo.markHeldByV2(row.merchant_uid);
  const entry: ScheduleRequest = {
    merchantUid: row.merchant_uid,
    at: Math.floor(new Date(row.scheduled_at).getTime() / 1000),
    amount: row.amount,
    name: row.name,
    currency: row.currency,
    buyerName: row.buyer_name ?? undefined,
    buyerEmail: row.buyer_email ?? undefined,
    buyerTel: row.buyer_tel ?? undefined,
  };
  try {
    await deps.v2.schedule(row.customer_uid, [entry], o);
    return "ok: revoked at V1, registered at V2";
  } catch (err) {
    if (err instanceof IamportRefusedError && /ALREADY_EXISTS/.test(err.iamportMessage)) return "ok: already registered at V2";
    deps.logger.error({ merchantUid: row.merchant_uid, err: (err as Error).message }, "revoked at V1 but not registered at V2");
    return `NOT REGISTERED AT V2 (revoked at V1): ${(err as Error).message}; run the command again`;
  }
}
