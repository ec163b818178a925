import { Migration } from "@mikro-orm/migrations";

/**
 * A check that the renewal batch's write (src/billing/renewal.ts) reached
 * every row it was given: it raises, which fails the whole statement, when
 * the payments updated, the next charges inserted or the subscriptions moved
 * are not one per renewal. The write is sent with its COMMIT in one round
 * trip, so a short write must fail before the COMMIT, not be found short
 * after it.
 */
export class Migration20261122080000_renewal_rows_written extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create or replace function renewal_rows_written(payments bigint, next_charges bigint, subscriptions bigint, expected bigint)
  returns bigint language plpgsql volatile as $fn$
begin
  if payments <> expected or next_charges <> expected or subscriptions <> expected then
    raise exception 'renewal write reached % payments, % next charges and % subscriptions of %', payments, next_charges, subscriptions, expected
      using errcode = 'P0001';
  end if;
  return expected;
end
$fn$;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop function if exists renewal_rows_written(bigint, bigint, bigint, bigint);`);
  }
}
