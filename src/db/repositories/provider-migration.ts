import type { MikroORM } from "@mikro-orm/postgresql";
import { query } from "../tx";

export interface CardKeyRow {
  customer_uid: string;
  billing_key: string | null;
}

export interface OpenScheduleRow {
  merchant_uid: string;
  customer_uid: string;
  subscription_id: string | null;
  name: string;
  amount: number;
  currency: string;
  buyer_name: string | null;
  buyer_email: string | null;
  buyer_tel: string | null;
  scheduled_at: Date;
}

/** The reads and writes of the move from Iamport V1 to PortOne V2 (src/billing/provider-migration.ts). */
export class ProviderMigrationRepository {
  constructor(private readonly orm: MikroORM) {}

  private exec<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.orm.em.fork().getConnection().execute<T[]>(sql, params as never[]);
  }

  activeCards(): Promise<CardKeyRow[]> {
    return this.exec<CardKeyRow>(`select "customer_uid", "billing_key" from "cards" where "status" = 'ACTIVE' order by "customer_uid"`);
  }

  /** Charges registered with the provider's scheduler and not yet run: subscriptions' renewals and the merchant's own schedules. */
  openSchedules(): Promise<OpenScheduleRow[]> {
    return this.exec<OpenScheduleRow>(
      `select "merchant_uid", "customer_uid", "subscription_id", "name", "amount", "currency", "buyer_name", "buyer_email", "buyer_tel", "scheduled_at"
         from "payments" where "kind" = 'SCHEDULE' and "status" = 'SCHEDULED' and "customer_uid" is not null order by "scheduled_at", "merchant_uid"`,
    );
  }

  /** Marks a charge held by V2: V1 no longer holds it (revoked there), so V2 is asked about it from now on. */
  async markHeldByV2(merchantUid: string): Promise<void> {
    await this.exec(`update "payments" set "held_by" = 'v2', "updated_at" = now() where "merchant_uid" = ? and "held_by" is distinct from 'v2'`, [merchantUid]);
  }

  /** Records the V2 billing key of a V1 card; a key already recorded is kept. */
  async setBillingKey(customerUid: string, billingKey: string): Promise<boolean> {
    const rows = await this.exec<{ customer_uid: string }>(
      `update "cards" set "billing_key" = ?, "updated_at" = now() where "customer_uid" = ? and "status" = 'ACTIVE' and "billing_key" is null returning "customer_uid"`,
      [billingKey, customerUid],
    );
    return rows.length > 0;
  }
}

/**
 * Which of these orders `npm run migrate:v2` moved to V2 (payments.held_by), in
 * one statement. Read on the pool's own connection, outside any transaction
 * (provider calls are made with no lock held).
 */
export function heldByV2Lookup(orm: MikroORM): (merchantUids: readonly string[]) => Promise<Set<string>> {
  return async (merchantUids) => {
    if (merchantUids.length === 0) return new Set();
    // The ids as one array parameter (query() hands it to the driver as it is).
    const rows = await query<{ merchant_uid: string }>({ em: orm.em.fork() }, `select "merchant_uid" from "payments" where "merchant_uid" = any(?::varchar[]) and "held_by" = 'v2'`, [
      [...merchantUids],
    ]);
    return new Set(rows.map((r) => r.merchant_uid));
  };
}
