import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { PortOneClient } from "@portone/server-sdk";
import { loadConfig } from "../../src/config";
import { startServer, type RunningServer } from "../../src/server";
import { migrateV1ToV2, type MigrationDeps } from "../../src/billing/provider-migration";
import { billingKeyLookup } from "../../src/db/repositories/billing-keys";
import { ProviderMigrationRepository } from "../../src/db/repositories/provider-migration";
import { createLogger } from "../../src/logger";
import { IamportV1Provider } from "../../src/provider/v1";
import { PortOneV2Provider } from "../../src/provider/v2";
import { API_KEY, GOOD_CARD, Harness, registerCard, uid } from "../support/harness";
import { advancePastNextPayment, cancelSub, getSub, paymentRows, renewalUid, startSub, startSubHarness } from "../subscriptions/helpers";

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
  ({ deps, portone } = migrationOf(h));
});
afterAll(async () => {
  await h?.close();
});

/** What migrate:v2 is given for the server of `of`: V1 through the server's own client, V2 at the emulator. */
function migrationOf(of: Harness): { deps: MigrationDeps; portone: ReturnType<typeof PortOneClient> } {
  const v2 = of.emulator.v2!;
  const logger = createLogger({ level: "silent" });
  return {
    portone: PortOneClient({ secret: v2.apiSecret, baseUrl: v2.url, storeId: v2.storeId }),
    deps: {
      repo: new ProviderMigrationRepository(of.server.orm),
      v1: new IamportV1Provider(of.server.iamport!),
      v2: new PortOneV2Provider({
        baseUrl: v2.url,
        apiSecret: v2.apiSecret,
        storeId: v2.storeId,
        channelKey: v2.channelKey,
        webhookSecret: v2.webhookSecret,
        timeoutMs: 5000,
        logger,
        keys: billingKeyLookup(of.server.orm),
      }),
      logger,
    },
  };
}

/** What PortOne's own V1→V2 billing-key migration gives for a card: a V2 key for the same card. */
async function v2KeyFor(on: Harness = h, client = portone): Promise<string> {
  const { billingKeyInfo } = await client.payment.billingKey.issueBillingKey({
    channelKey: on.emulator.v2!.channelKey,
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

/**
 * Iamport V1 as the real one answers about the orders migrate:v2 moved: V1
 * revoked them and never paid them. The emulator keeps one record per
 * merchant_uid for both APIs, so V1 would report V2's schedule and payment as
 * its own; this proxy in front of it answers V1's view of a moved order
 * instead (its schedule revoked, no payment), and forwards everything else.
 */
async function startV1View(): Promise<{ url: string; target: string; moved: Map<string, string>; close(): Promise<void> }> {
  const view = { url: "", target: "", moved: new Map<string, string>(), close: async () => undefined as void };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const path = req.url ?? "/";
        const segments = path.split("?")[0].split("/").map(decodeURIComponent);
        const moved = segments.find((seg) => view.moved.has(seg));
        // A payment V1 never made: asked under an order V1 never knew, the emulator answers V1's "not found".
        const forwarded = moved && path.startsWith("/payments/") ? path.replace(encodeURIComponent(moved), `never_${moved}`) : path;
        // Nothing of a moved order is left for V1 to revoke.
        let sent = Buffer.concat(chunks).toString();
        if (path.startsWith("/subscribe/payments/unschedule")) for (const m of view.moved.keys()) sent = sent.split(m).join(`never_${m}`);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && k !== "host" && k !== "content-length") headers[k] = v;
        const r = await fetch(view.target + forwarded, { method: req.method, headers, body: chunks.length ? sent : undefined });
        let text = await r.text();
        if (moved && path.startsWith("/subscribe/payments/schedule/") && r.status === 200) {
          const body = JSON.parse(text) as { response: Record<string, unknown> };
          body.response = { ...body.response, customer_uid: view.moved.get(moved), schedule_status: "revoked", payment_status: null, imp_uid: null };
          text = JSON.stringify(body);
        }
        res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/json" });
        res.end(text);
      })().catch((err: Error) => {
        res.writeHead(502);
        res.end(err.message);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  view.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  view.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return view;
}

/** PortOne's signature of a webhook (Standard Webhooks), as its console's secret makes it. */
function signedV2Webhook(secret: string, body: string): Record<string, string> {
  const id = `wh_${crypto.randomBytes(6).toString("hex")}`;
  const now = Math.floor(Date.now() / 1000);
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  return { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(now), "webhook-signature": `v1,${crypto.createHmac("sha256", key).update(`${id}.${now}.${body}`).digest("base64")}` };
}

describe("a server still on V1 in migration mode when a moved charge's time comes", () => {
  let m: Harness;
  let v1View: Awaited<ReturnType<typeof startV1View>>;
  let restarted: RunningServer | undefined;
  beforeAll(async () => {
    v1View = await startV1View();
    m = await startSubHarness({ migration: { iamportUrl: v1View.url } });
    v1View.target = m.emulator.url;
  });
  afterAll(async () => {
    await restarted?.close();
    await m?.close();
    await v1View?.close();
  });

  it("revokes a moved charge at V2 when its subscription is canceled", async () => {
    const { deps: mdeps, portone: client } = migrationOf(m);
    const customerUid = await registerCard(m, uid("mig_cancel"));
    const sub = await startSub(m, { customerUid, amount: 4_900, interval: "MONTH" });
    const moved = renewalUid(sub.id, 2);
    const key = await v2KeyFor(m, client);
    const applied = await migrateV1ToV2(mdeps, { mapping: new Map([[customerUid, key]]), apply: true });
    expect(applied.results).toContainEqual({ ref: moved, outcome: "ok: revoked at V1, registered at V2" });
    v1View.moved.set(moved, customerUid);

    await cancelSub(m, sub.id);
    const atV2 = await client.payment.paymentSchedule.getPaymentSchedules({ filter: { billingKey: key } });
    expect(atV2.items).toEqual([expect.objectContaining({ paymentId: moved, status: "REVOKED" })]);
    const ran = await advancePastNextPayment(m, sub);
    expect(ran.executed.filter((e) => e.merchant_uid === moved)).toEqual([]);
    expect((await paymentRows(m, sub.id)).find((r) => r.merchant_uid === moved)).toMatchObject({ status: "REVOKED" });
  });

  it("settles it from V2 (PAID once), renews the subscription, and a restart on V2 changes nothing", async () => {
    const { deps: mdeps, portone: client } = migrationOf(m);
    const customerUid = await registerCard(m, uid("mig_late"));
    const sub = await startSub(m, { customerUid, amount: 9_900, interval: "MONTH" });
    const moved = renewalUid(sub.id, 2);
    const key = await v2KeyFor(m, client);
    const applied = await migrateV1ToV2(mdeps, { mapping: new Map([[customerUid, key]]), apply: true });
    expect(applied.results).toContainEqual({ ref: moved, outcome: "ok: revoked at V1, registered at V2" });
    v1View.moved.set(moved, customerUid);
    const v1Says = await m.emu.get(`/subscribe/payments/schedule/${moved}`, { baseURL: v1View.url, headers: { authorization: `Bearer ${await m.iamportToken()}` } });
    expect(v1Says.data.response).toMatchObject({ schedule_status: "revoked", customer_uid: customerUid });

    // The operator is late: V2 charges it while the server is still on V1, and V2's webhook URL is not set yet.
    m.emulator.v2!.setWebhookUrl(undefined);
    const ran = await advancePastNextPayment(m, sub);
    expect(ran.executed.filter((e) => e.merchant_uid === moved)).toHaveLength(1);
    const report = await m.server.reconciler.runOnce();
    expect(report.errors).toBe(0);
    const afterReconcile = await paymentRows(m, sub.id);
    expect(afterReconcile).toEqual([
      expect.objectContaining({ period: 1, status: "PAID" }),
      expect.objectContaining({ merchant_uid: moved, period: 2, status: "PAID", amount: 9_900, imp_uid: moved, fail_reason: null }),
      expect.objectContaining({ merchant_uid: renewalUid(sub.id, 3), period: 3, status: "SCHEDULED" }),
    ]);
    const renewed = await getSub(m, sub.id);
    expect(renewed.status).toBe("ACTIVE");
    expect(renewed.currentPeriodStart).toBe(sub.currentPeriodEnd);
    // Charged once, by V2.
    const paidAtV2 = await client.payment.getPayment({ paymentId: moved });
    expect(paidAtV2).toMatchObject({ status: "PAID", amount: { total: 9_900 } });
    // Again: nothing changes.
    await m.server.reconciler.runOnce();
    expect(await paymentRows(m, sub.id)).toEqual(afterReconcile);

    // V2's webhook of it, once V2's webhook URL names this server (still on V1): re-queried at V2, nothing changes.
    const body = JSON.stringify({ type: "Transaction.Paid", timestamp: new Date().toISOString(), data: { storeId: m.emulator.v2!.storeId, paymentId: moved, transactionId: "t" } });
    const hook = await m.http.post("/portone-webhook", body, { headers: signedV2Webhook(m.emulator.v2!.webhookSecret, body) });
    expect(hook.status).toBe(200);
    expect(await paymentRows(m, sub.id)).toEqual(afterReconcile);

    // The next renewal was registered at V1 (the server's provider): the command, run again before the switch, moves it.
    const again = await migrateV1ToV2(mdeps, { mapping: new Map([[customerUid, key]]), apply: true });
    expect(again.results).toContainEqual({ ref: renewalUid(sub.id, 3), outcome: "ok: revoked at V1, registered at V2" });

    // The restart on V2 needs the database to outlive the server: the embedded one lives inside it.
    if (!m.config.databaseUrl) return;
    await m.server.close();
    const v2 = m.emulator.v2!;
    restarted = await startServer(
      loadConfig({
        NODE_ENV: "test",
        PORT: "0",
        HOST: "127.0.0.1",
        API_KEYS: API_KEY,
        RECONCILE_INTERVAL_SECONDS: "0",
        IAMPORT_TIMEOUT_MS: "5000",
        RATE_LIMIT_PER_MINUTE: "0",
        DATABASE_URL: m.config.databaseUrl,
        PORTONE_API_SECRET: v2.apiSecret,
        PORTONE_STORE_ID: v2.storeId,
        PORTONE_CHANNEL_KEY: v2.channelKey,
        PORTONE_WEBHOOK_SECRET: v2.webhookSecret,
      }),
      { logger: createLogger({ level: "silent" }), portone: { url: v2.url, webhookSecret: v2.webhookSecret, clockUrl: `${m.emulator.url}/__emulator/clock` } },
    );
    expect(restarted.provider.name).toBe("v2");
    const onV2 = { ...m, server: restarted, sql: <T>(q: string, p: unknown[] = []) => restarted!.orm.em.fork().getConnection().execute<T[]>(q, p as never[]) } as Harness;
    v2.setWebhookUrl(`${restarted.url}/portone-webhook`);
    const redelivered = await fetch(`${restarted.url}/portone-webhook`, { method: "POST", body, headers: signedV2Webhook(v2.webhookSecret, body) });
    expect(redelivered.status).toBe(200);
    await restarted.reconciler.runOnce();
    expect(await paymentRows(onV2, sub.id)).toEqual(afterReconcile);

    // The next renewal, moved by the second run, is charged by V2 and settled from its webhook.
    await advancePastNextPayment(onV2, { nextPaymentAt: afterReconcile[2].scheduled_at!.toISOString() });
    await restarted.reconciler.runOnce();
    const rows = await paymentRows(onV2, sub.id);
    expect(rows.slice(0, 3)).toEqual([afterReconcile[0], afterReconcile[1], expect.objectContaining({ period: 3, status: "PAID", imp_uid: renewalUid(sub.id, 3) })]);
    expect(rows.filter((r) => r.status === "PAID")).toHaveLength(3);
  });
});
