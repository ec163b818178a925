/**
 * Demo of the typed merchant client: register a card, start a monthly subscription, list its payments.
 *
 *   npm start                                   # in another terminal: prints the development API key
 *   BILLING_API_KEY=dev_... npm run example:client
 *
 * BILLING_URL defaults to http://localhost:4000/graphql. With the in-process emulator (no
 * IAMPORT_API_KEY) nothing real is charged; 4242-4242-4242-4242 is the emulator's good test card.
 */
import { BillingApiError, createBillingClient } from "./client";

async function main(): Promise<void> {
  const url = process.env.BILLING_URL ?? "http://localhost:4000/graphql";
  const apiKey = process.env.BILLING_API_KEY;
  if (!apiKey) {
    console.error("Set BILLING_API_KEY to one of the server's API_KEYS (or the development key printed at its start).");
    process.exit(2);
  }
  const billing = createBillingClient(url, apiKey);
  const customerUid = process.env.CUSTOMER_UID ?? `demo_${Date.now().toString(36)}`;

  const card = await billing.registerCard({
    customerUid,
    cardNumber: "4242-4242-4242-4242",
    expiry: "2030-12",
    birth: "900101",
    pwd2digit: "12",
  });
  console.log(`card ${card.customerUid}: ${card.cardName ?? "?"} ${card.cardNumberMasked ?? ""} ${card.status}`);

  const subscription = await billing.startSubscription({ customerUid, name: "Pro monthly", amount: 9900, interval: "MONTH" });
  console.log(
    `subscription ${subscription.id}: ${subscription.status}, period ends ${subscription.currentPeriodEnd}, next payment ${subscription.nextPaymentAt}`,
  );

  const payments = await billing.listPayments({ customerUid, first: 10 });
  for (const p of payments.nodes) {
    console.log(`payment ${p.merchantUid}: ${p.status} ${p.paidAmount ?? p.amount} ${p.currency}${p.failReason ? ` (${p.failReason})` : ""}`);
  }
}

main().catch((err: unknown) => {
  if (err instanceof BillingApiError) console.error(`${err.code ?? "ERROR"}: ${err.message}${err.field ? ` (field ${err.field})` : ""}`);
  else console.error(err);
  process.exit(1);
});
