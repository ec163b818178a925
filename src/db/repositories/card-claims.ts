import { query, type Scope } from "../tx";

/**
 * One change to a customer's billing key at a time (register, replace,
 * confirm, delete), without holding a lock or a connection while Iamport
 * answers: the claim is a row committed before the Iamport call and deleted
 * after the answer is recorded. A claim left by a process that died expires
 * at `claimed_until`, and the next change takes it over.
 */
export async function claimCard(scope: Scope, customerUid: string, seconds: number): Promise<boolean> {
  const rows = await query(
    scope,
    `insert into card_claims (customer_uid, claimed_until) values (?, now() + make_interval(secs => ?))
     on conflict (customer_uid) do update set claimed_until = excluded.claimed_until
     where card_claims.claimed_until < now()
     returning customer_uid`,
    [customerUid, seconds],
  );
  return rows.length === 1;
}

export async function releaseCard(scope: Scope, customerUid: string): Promise<void> {
  await query(scope, `delete from card_claims where customer_uid = ?`, [customerUid]);
}
