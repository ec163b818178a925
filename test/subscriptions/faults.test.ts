import { Harness, registerCard, uid } from "../support/harness";
import {
  advancePastNextPayment,
  ageOpenWork,
  cancelSub,
  customerSchedules,
  emulatorPaymentCount,
  getSub,
  heldCall,
  iamportPaymentByOrder,
  paymentRows,
  renewalUid,
  startSub,
  startSubHarness,
  Sub,
  webhooksSettled,
} from "./helpers";

let h: Harness;
beforeAll(async () => {
  h = await startSubHarness();
});
afterAll(async () => {
  await h?.close();
});

// Each test cancels what it started, so its renewals do not run in later tests' clock moves.
const started: Sub[] = [];
async function start(interval: "DAY" | "WEEK" | "MONTH" = "WEEK"): Promise<Sub> {
  const sub = await startSub(h, { customerUid: await registerCard(h, uid("c")), interval });
  started.push(sub);
  // The first charge's own webhook goes out in the background: let it land before a fault is set.
  await webhooksSettled(h, [renewalUid(sub.id, 1)]);
  return sub;
}
afterEach(async () => {
  await h.emu.delete("/__emulator/faults");
  for (const s of started.splice(0)) await cancelSub(h, s.id);
});

async function fault(route: string, mode: "http500" | "timeout" | "hold" | "expire_token" | "drop_webhook", times = 1): Promise<void> {
  const r = await h.emu.post("/__emulator/faults", { route, mode, times });
  expect(r.status).toBe(201);
}

/** Period 2 paid once, period 3 scheduled once, in the database and at Iamport. */
async function expectRenewedOnce(sub: Sub): Promise<void> {
  const rows = await paymentRows(h, sub.id);
  expect(rows.map((r) => [r.period, r.attempt, r.status])).toEqual([
    [1, 1, "PAID"],
    [2, 1, "PAID"],
    [3, 1, "SCHEDULED"],
  ]);
  expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
  expect((await getSub(h, sub.id)).status).toBe("ACTIVE");
}

describe("a lost renewal webhook (drop_webhook)", () => {
  it("is found by reconciliation: the renewal is recorded and the next one scheduled, once", async () => {
    const sub = await start();
    await fault("*", "drop_webhook");
    const r = await advancePastNextPayment(h, sub);
    expect(r.executed).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 2), status: "paid" })]);
    expect(r.webhooks).toMatchObject({ delivered: 0, dropped: 1 });
    // Nothing heard: the server still has the payment as scheduled and the subscription in period 1.
    expect((await paymentRows(h, sub.id)).map((p) => p.status)).toEqual(["PAID", "SCHEDULED"]);
    expect((await getSub(h, sub.id)).currentPeriodEnd).toBe(sub.currentPeriodEnd);

    const report = await h.server.reconciler.runOnce();
    expect(report).toMatchObject({ dueSchedules: 1, errors: 0 });
    await expectRenewedOnce(sub);
    expect((await getSub(h, sub.id)).currentPeriodStart).toBe(sub.currentPeriodEnd);

    // A second run finds nothing left to do.
    const again = await h.server.reconciler.runOnce();
    expect(again).toMatchObject({ dueSchedules: 0, pendingCharges: 0, unregisteredSchedules: 0, errors: 0 });
    await expectRenewedOnce(sub);
  });
});

describe("a first charge whose answer never comes", () => {
  it("is settled by its merchant_uid when POST /subscribe/payments/again times out, and charged once", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const before = await emulatorPaymentCount(h);
    await fault("POST /subscribe/payments/again", "timeout");
    const sub = await startSub(h, { customerUid });
    started.push(sub);
    expect(sub.status).toBe("ACTIVE");
    expect(await emulatorPaymentCount(h)).toBe(before + 1);
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 1))).toMatchObject({ status: "paid" });
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "SCHEDULED"],
    ]);
    expect(await customerSchedules(h, customerUid, "scheduled")).toHaveLength(1);
  });

  it("stays INCOMPLETE when Iamport cannot be asked either, and reconciliation settles it without charging again", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const before = await emulatorPaymentCount(h);
    await fault("POST /subscribe/payments/again", "timeout");
    await fault("GET /payments/find/{merchant_uid}", "http500");
    // The charge's own webhook is lost too: only reconciliation can find out.
    await fault("*", "drop_webhook");
    const sub = await startSub(h, { customerUid });
    started.push(sub);
    expect(sub.status).toBe("INCOMPLETE");
    expect(sub.statusReason).toMatch(/reconciliation/);
    expect((await paymentRows(h, sub.id)).map((r) => r.status)).toEqual(["PENDING"]);

    // Too recent: a charge that may still be in flight is left alone.
    expect((await h.server.reconciler.runOnce()).pendingCharges).toBe(0);
    await ageOpenWork(h, 600);
    const report = await h.server.reconciler.runOnce();
    expect(report).toMatchObject({ pendingCharges: 1, errors: 0 });
    const s = await getSub(h, sub.id);
    expect(s.status).toBe("ACTIVE");
    expect(await emulatorPaymentCount(h)).toBe(before + 1);
    expect((await paymentRows(h, sub.id)).map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "SCHEDULED"],
    ]);
  });

  it("is charged by reconciliation, under the same merchant_uid, when Iamport never received it (HTTP 500)", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const before = await emulatorPaymentCount(h);
    await fault("POST /subscribe/payments/again", "http500");
    const sub = await startSub(h, { customerUid });
    started.push(sub);
    expect(sub.status).toBe("INCOMPLETE");
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 1))).toBeNull();

    await ageOpenWork(h, 600);
    await h.server.reconciler.runOnce();
    expect((await getSub(h, sub.id)).status).toBe("ACTIVE");
    expect(await emulatorPaymentCount(h)).toBe(before + 1);
    expect(await iamportPaymentByOrder(h, renewalUid(sub.id, 1))).toMatchObject({ status: "paid" });
    expect(await customerSchedules(h, customerUid, "scheduled")).toHaveLength(1);
  });
});

describe("registering the next schedule", () => {
  it("registers it exactly once when POST /subscribe/payments/schedule times out during a renewal", async () => {
    const sub = await start();
    await fault("POST /subscribe/payments/schedule", "timeout");
    const r = await advancePastNextPayment(h, sub);
    expect(r.webhooks).toMatchObject({ delivered: 1, failed: 0 });
    await expectRenewedOnce(sub);
    expect(await customerSchedules(h, sub.customerUid)).toHaveLength(2);
  });

  it("registers it exactly once when the first charge's schedule call times out", async () => {
    const customerUid = await registerCard(h, uid("c"));
    await fault("POST /subscribe/payments/schedule", "timeout");
    const sub = await startSub(h, { customerUid });
    started.push(sub);
    expect(sub.status).toBe("ACTIVE");
    const scheduled = await customerSchedules(h, customerUid);
    expect(scheduled.map((s) => [s.merchant_uid, s.schedule_status])).toEqual([[renewalUid(sub.id, 2), "scheduled"]]);
    expect(sub.nextPaymentAt).toBe(new Date(scheduled[0].schedule_at * 1000).toISOString());
  });

  it("leaves no live schedule behind when a cancellation follows a renewal whose registration outcome is unknown", async () => {
    const sub = await start();
    // The registration lands at Iamport but its answer is lost, and so is the look-up that would settle it.
    await fault("POST /subscribe/payments/schedule", "timeout");
    await fault("GET /subscribe/payments/schedule/{merchant_uid}", "http500");
    const r = await advancePastNextPayment(h, sub);
    expect(r.webhooks).toMatchObject({ delivered: 1, failed: 0 });
    // The renewal is recorded with its next charge PENDING (registered at Iamport, unknown to the server).
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
      [3, "PENDING"],
    ]);
    expect((await customerSchedules(h, sub.customerUid, "scheduled")).map((s) => s.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
    const canceled = await cancelSub(h, sub.id);
    started.splice(started.indexOf(sub), 1);
    // The renewal was paid: its period is granted, and the cancellation takes effect at its end.
    expect(canceled).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodStart: sub.currentPeriodEnd, nextPaymentAt: null });
    // The charge registered meanwhile is revoked at Iamport and recorded so.
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
      [3, "REVOKED"],
    ]);
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    expect(await getSub(h, sub.id)).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, nextPaymentAt: null });
  });

  it("leaves no live schedule behind when a cancellation arrives while a registration whose answer is then lost is in flight", async () => {
    const sub = await start();
    // The registration lands at Iamport and its answer is held until the server's client gives up (5 s in the harness);
    // the look-up that would settle it fails too.
    await fault("POST /subscribe/payments/schedule", "hold");
    await fault("GET /subscribe/payments/schedule/{merchant_uid}", "http500");
    const renewal = advancePastNextPayment(h, sub);
    await heldCall(h, /^POST \/subscribe\/payments\/schedule$/);
    // The cancellation is sent while the registration is in flight.
    const [canceled, r] = await Promise.all([cancelSub(h, sub.id), renewal]);
    started.splice(started.indexOf(sub), 1);
    expect(r.webhooks).toMatchObject({ delivered: 1, failed: 0 });
    expect(canceled).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, currentPeriodStart: sub.currentPeriodEnd, nextPaymentAt: null });
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
      [3, "REVOKED"],
    ]);
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    expect(await getSub(h, sub.id)).toMatchObject({ status: "ACTIVE", cancelAtPeriodEnd: true, nextPaymentAt: null });
  });

  it("leaves it PENDING when Iamport refuses to answer, and reconciliation registers it once", async () => {
    const sub = await start();
    await fault("POST /subscribe/payments/schedule", "http500", 2);
    await advancePastNextPayment(h, sub);
    let rows = await paymentRows(h, sub.id);
    expect(rows.map((r) => [r.period, r.status])).toEqual([
      [1, "PAID"],
      [2, "PAID"],
      [3, "PENDING"],
    ]);
    expect(await customerSchedules(h, sub.customerUid, "scheduled")).toEqual([]);
    const s = await getSub(h, sub.id);
    expect(s.status).toBe("ACTIVE");
    expect(s.nextPaymentAt).toBe(s.currentPeriodEnd);

    await ageOpenWork(h, 600);
    const report = await h.server.reconciler.runOnce();
    expect(report).toMatchObject({ unregisteredSchedules: 1, errors: 0 });
    await expectRenewedOnce(sub);
    rows = await paymentRows(h, sub.id);
    expect(rows[2].scheduled_at?.toISOString()).toBe(s.currentPeriodEnd);
  });

  it("moves a schedule that was never registered and whose time passed to just after Iamport's now", async () => {
    const sub = await start("DAY");
    await fault("POST /subscribe/payments/schedule", "http500", 2);
    await advancePastNextPayment(h, sub);
    const pending = await getSub(h, sub.id);
    // Iamport was unreachable for longer than a period: the registration is late.
    await advancePastNextPayment(h, pending, 3600);
    await ageOpenWork(h, 600);
    const clock = async () => (await h.emu.get("/__emulator/clock")).data.now as number;
    const before = await clock();
    const report = await h.server.reconciler.runOnce();
    const after = await clock();
    expect(report.errors).toBe(0);
    const scheduled = await customerSchedules(h, sub.customerUid, "scheduled");
    expect(scheduled.map((x) => x.merchant_uid)).toEqual([renewalUid(sub.id, 3)]);
    // A minute after Iamport's now as the reconciler read it (during runOnce), however long the run took.
    expect(scheduled[0].schedule_at).toBeGreaterThanOrEqual(before + 60);
    expect(scheduled[0].schedule_at).toBeLessThanOrEqual(after + 60);
    expect((await getSub(h, sub.id)).nextPaymentAt).toBe(new Date(scheduled[0].schedule_at * 1000).toISOString());
    // And it runs then, as the third period's (late) payment.
    const r = await advancePastNextPayment(h, await getSub(h, sub.id));
    expect(r.executed).toEqual([expect.objectContaining({ merchant_uid: renewalUid(sub.id, 3), status: "paid" })]);
  });
});

describe("an expired access token", () => {
  it("is refreshed transparently during a renewal and a start", async () => {
    const sub = await start();
    await fault("*", "drop_webhook");
    const r = await advancePastNextPayment(h, sub);
    // The clock jump expired the server's cached token behind its back (its lifetime is counted on the
    // server's clock): take a fresh one first, so that the fault below is the only expiry it meets.
    await h.server.provider.serverNow();
    await fault("*", "expire_token");
    const redelivered = await h.emu.post("/__emulator/webhooks/redeliver", { imp_uid: r.executed[0].imp_uid });
    expect(redelivered.data.webhooks).toMatchObject({ delivered: 1, failed: 0 });
    await expectRenewedOnce(sub);
    expect((await h.emu.get("/__emulator/faults")).data.faults).toEqual([]);

    await fault("*", "expire_token");
    const other = await startSub(h, { customerUid: await registerCard(h, uid("c")) });
    started.push(other);
    expect(other.status).toBe("ACTIVE");
    expect((await h.emu.get("/__emulator/faults")).data.faults).toEqual([]);
  });
});

describe("a webhook that arrives while Iamport is down", () => {
  it("answers 503, stays unprocessed, and reconciliation processes it later", async () => {
    const sub = await start();
    await fault("GET /payments/{imp_uid}", "http500");
    const r = await advancePastNextPayment(h, sub);
    expect(r.webhooks).toMatchObject({ delivered: 0, failed: 1 });
    const impUid = r.executed[0].imp_uid;
    const log = await h.emu.get("/__emulator/webhooks");
    const entry = (log.data.webhooks as { body: { imp_uid: string }; status_code: number }[]).filter((w) => w.body.imp_uid === impUid);
    expect(entry.map((w) => w.status_code)).toEqual([503]);
    const events = await h.sql<{ processed_at: Date | null; outcome: string }>(
      `select processed_at, outcome from webhook_events where imp_uid = ?`,
      [impUid],
    );
    expect(events).toHaveLength(1);
    expect(events[0].processed_at).toBeNull();
    expect(events[0].outcome).toMatch(/UPSTREAM_UNAVAILABLE/);
    expect((await paymentRows(h, sub.id)).map((p) => p.status)).toEqual(["PAID", "SCHEDULED"]);

    await ageOpenWork(h, 600);
    const report = await h.server.reconciler.runOnce();
    expect(report.events).toBeGreaterThanOrEqual(1);
    expect(report.errors).toBe(0);
    const after = await h.sql<{ processed_at: Date | null; outcome: string }>(`select processed_at, outcome from webhook_events where imp_uid = ?`, [
      impUid,
    ]);
    expect(after[0].processed_at).not.toBeNull();
    expect(after[0].outcome).toBe("PAID");
    await expectRenewedOnce(sub);
  });
});
