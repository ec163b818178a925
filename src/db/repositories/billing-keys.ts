import type { MikroORM } from "@mikro-orm/postgresql";
import type { BillingKeyLookup } from "../../provider/v2";

/**
 * The billing keys PortOne V2 issued, as the cards table keeps them: the
 * customer's active card, or the card of an order's customer. Read on the
 * pool's own connection, outside any transaction (provider calls are made
 * with no lock held).
 */
export function billingKeyLookup(orm: MikroORM): BillingKeyLookup {
  const one = async (sql: string, param: string): Promise<string | null> => {
    const rows = await orm.em.fork().getConnection().execute<{ billing_key: string | null }[]>(sql, [param]);
    return rows[0]?.billing_key ?? null;
  };
  return {
    ofCustomer: (customerUid) => one(`select "billing_key" from "cards" where "customer_uid" = ? and "status" = 'ACTIVE'`, customerUid),
    // A deleted card's key still names the schedules and payments made with it.
    ofOrder: (merchantUid) =>
      one(`select c."billing_key" from "payments" p join "cards" c on c."customer_uid" = p."customer_uid" where p."merchant_uid" = ?`, merchantUid),
  };
}
