import { PortOneClient } from "@portone/server-sdk";
import { migrateV1ToV2, type MigrationDeps } from "../../src/billing/provider-migration";
import { billingKeyLookup } from "../../src/db/repositories/billing-keys";
import { ProviderMigrationRepository } from "../../src/db/repositories/provider-migration";
import { createLogger } from "../../src/logger";
import { IamportV1Provider } from "../../src/provider/v1";
import { PortOneV2Provider } from "../../src/provider/v2";
import { GOOD_CARD, Harness, registerCard, uid } from "../support/harness";
import { advancePastNextPayment, renewalUid, startSub, startSubHarness } from "../subscriptions/helpers";

/**
 * The move from Iamport V1 to PortOne V2 (npm run migrate:v2): a server on V1
 * with live subscriptions, the emulator serving both APIs over the same clock.
 * A dry run changes nothing; applying records the V2 billing keys, revokes
 * each pending renewal at V1 and registers it at V2 under the same
 * merchant_uid, so the emulator's clock charges it once, through V2.
 */
let h: Harness;
let deps: MigrationDeps;
let portone: ReturnType<typeof PortOneClient>;
beforeAll(async () => {
  h = await startSubHarness({ emulator: { v2: { port: 0 } } });
  const v2 = h.emulator.v2!;
  portone = PortOneClient({ secret: v2.apiSecret, baseUrl: v2.url, storeId: v2.storeId });
  const logger = createLogger({ level: "silent" });
  deps = {
    repo: new ProviderMigrationRepository(h.server.orm),
    v1: new IamportV1Provider(h.server.iamport!),
    v2: new PortOneV2Provider({
      baseUrl: v2.url,
      apiSecret: v2.apiSecret,
      storeId: v2.storeId,
      channelKey: v2.channelKey,
      webhookSecret: v2.webhookSecret,
      timeoutMs: 5000,
      logger,
      keys: billingKeyLookup(h.server.orm),
    }),
    logger,
  };
});
afterAll(async () => {
  await h?.close();
});

/** What PortOne's own V1→V2 billing-key migration gives for a card: a V2 key for the same card. */
async function v2KeyFor(): Promise<string> {
  const { billingKeyInfo } = await portone.payment.billingKey.issueBillingKey({
    channelKey: h.emulator.v2!.channelKey,
    method: { card: { credential: { number: GOOD_CARD.replace(/-/g, ""), expiryYear: "31", expiryMonth: "12", birthOrBusinessRegistrationNumber: "880101" } } },
  });
  return billingKeyInfo.billingKey;
}

/** The schedule V1 answers for an order: its status and whose key it charges. */
const v1Schedule = async (merchantUid: string) => {
  const r = await h.emu.get(`/subscribe/payments/schedule/${merchantUid}`, { headers: { authorization: `Bearer ${await h.iamportToken()}` } });
  return { status: r.data.response?.schedule_status as string, customerUid: r.data.response?.customer_uid as string };
};
const cardKey = async (customerUid: string) => (await h.sql<{ billing_key: string | null }>(`select billing_key from cards where customer_uid = ?`, [customerUid]))[0].billing_key;

it("dry run reports, apply moves each pending renewal from V1 to V2 once, and a second run changes nothing", async () => {
  const mapped = await registerCard(h, uid("mig"));
  const unmapped = await registerCard(h, uid("mig_un"));
  const sub = await startSub(h, { customerUid: mapped, amount: 9_900, interval: "MONTH" });
  const next = renewalUid(sub.id, 2);
  expect(await v1Schedule(next)).toEqual({ status: "scheduled", customerUid: mapped });
  const key = await v2KeyFor();

  const dry = await migrateV1ToV2(deps, { mapping: new Map([[mapped, key]]), apply: false });
  expect(dry.applied).toBe(false);
  // The server must charge through V2 by the first moved charge's time (V1 no longer holds it then).
  const [{ scheduled_at }] = await h.sql<{ scheduled_at: Date }>(`select scheduled_at from payments where merchant_uid = ?`, [next]);
  expect(dry.switchBy).toEqual(new Date(scheduled_at));
  expect(dry.actions).toEqual(
    expect.arrayContaining([
      { kind: "map-key", customerUid: mapped, billingKey: key },
      { kind: "re-register", customerUid: unmapped },
      expect.objectContaining({ kind: "move-schedule", merchantUid: next }),
    ]),
  );
  expect(await cardKey(mapped)).toBeNull();
  expect(await v1Schedule(next)).toEqual({ status: "scheduled", customerUid: mapped });

  // Nothing moves while a live card has no V2 key.
  await expect(migrateV1ToV2(deps, { mapping: new Map([[mapped, key]]), apply: true })).rejects.toThrow(unmapped);
  expect(await v1Schedule(next)).toEqual({ status: "scheduled", customerUid: mapped });

  const mapping = new Map([
    [mapped, key],
    [unmapped, await v2KeyFor()],
  ]);
  const applied = await migrateV1ToV2(deps, { mapping, apply: true });
  expect(applied.results).toContainEqual({ ref: next, outcome: "ok: revoked at V1, registered at V2" });
  expect(await cardKey(mapped)).toBe(key);
  // The emulator keeps one schedule record per merchant_uid for both APIs: V1's was revoked, and the one
  // there now is V2's, charging the V2 billing key.
  expect(await v1Schedule(next)).toEqual({ status: "scheduled", customerUid: key });
  const at2 = await portone.payment.paymentSchedule.getPaymentSchedules({ filter: { billingKey: key } });
  expect(at2.items).toEqual([expect.objectContaining({ paymentId: next, status: "SCHEDULED" })]);

  // Again (an interrupted run is repeated): found revoked at V1 and registered at V2 already.
  const again = await migrateV1ToV2(deps, { mapping, apply: true });
  expect(again.results).toContainEqual({ ref: next, outcome: "ok: already registered at V2" });

  // The clock reaches it: charged once, by V2.
  const ran = await advancePastNextPayment(h, sub);
  expect(ran.executed.filter((e) => e.merchant_uid === next)).toHaveLength(1);
  expect(h.emulator.v2!.webhookLog().map((w) => w.body)).toContainEqual(expect.objectContaining({ type: "Transaction.Paid", data: expect.objectContaining({ paymentId: next }) }));
});
