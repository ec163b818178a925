import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PortOneClient, Webhook } from "@portone/server-sdk";
import { TEST_CARDS } from "../src";
import { advance, startTestEmulator, uid, WebhookReceiver } from "./helpers";

/*
 * With a state file, a restarted emulator still knows V2's billing keys,
 * payments and schedules, and runs the schedules it kept as V2's.
 */

it("keeps V2's billing keys, payments and schedules across a restart, never the card number", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "emulator-v2-state-"));
  const file = path.join(dir, "emulator.json");
  const hooks = await new WebhookReceiver().start();
  const webhookSecret = `whsec_${Buffer.alloc(24, 9).toString("base64")}`;
  const start = () => startTestEmulator({ stateFile: file, webhookUrl: hooks.url, v2: { port: 0, webhookUrl: hooks.url, webhookSecret } });
  try {
    const first = await start();
    let portone = PortOneClient({ secret: "portone_emulator_secret", baseUrl: first.emulator.v2?.url });
    const { billingKeyInfo } = await portone.payment.billingKey.issueBillingKey({
      method: { card: { credential: { number: TEST_CARDS.VALID, expiryYear: "99", expiryMonth: "12" } } },
    });
    const billingKey = billingKeyInfo.billingKey;
    const paid = uid("pay");
    const later = uid("sched");
    const payment = { billingKey, orderName: "정기결제", amount: { total: 5500, taxFree: 500 }, currency: "KRW" as const };
    await portone.payment.payWithBillingKey({ paymentId: paid, ...payment });
    const { schedule } = await portone.payment.paymentSchedule.createPaymentSchedule({
      paymentId: later,
      payment,
      timeToPay: new Date(Date.now() + 86400_000).toISOString(),
    });
    await first.close();
    expect(fs.readFileSync(file, "utf8")).not.toContain("4242424242424242");

    const second = await start();
    portone = PortOneClient({ secret: "portone_emulator_secret", baseUrl: second.emulator.v2?.url });
    expect(await portone.payment.billingKey.getBillingKeyInfo({ billingKey })).toMatchObject({ status: "ISSUED" });
    expect(await portone.payment.getPayment({ paymentId: paid })).toMatchObject({ status: "PAID", amount: { total: 5500, taxFree: 500 } });
    expect(await portone.payment.paymentSchedule.getPaymentSchedule({ paymentScheduleId: schedule.id })).toMatchObject({ status: "SCHEDULED" });

    await advance(second, 2 * 86400);
    expect(await portone.payment.getPayment({ paymentId: later })).toMatchObject({ status: "PAID", scheduleId: schedule.id });
    const hook = hooks.received.find((h) => h.body.type === "Transaction.Paid" && (h.body.data as unknown as { paymentId: string }).paymentId === later);
    expect(hook).toBeDefined();
    await Webhook.verify(webhookSecret, hook?.raw ?? "", (hook?.headers ?? {}) as Record<string, string>);
    await second.close();
  } finally {
    await hooks.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
