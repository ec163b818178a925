/**
 * Demo of the typed merchant client: register a card, start a monthly subscription, list its payments.
 *
 *   npm start                                   # in another terminal
 *   npm run example:client                      # takes the development key from ./.data/dev-key
 *
 * BILLING_URL defaults to http://localhost:4000/graphql; BILLING_API_KEY to the development key
 * in ./.data/dev-key. With the in-process emulator (no IAMPORT_API_KEY) nothing real is charged;
 * 4242-4242-4242-4242 is the emulator's good test card.
 */
import fs from "node:fs";
import { BillingApiError, createBillingClient } from "./client";

const url = process.env.BILLING_URL ?? "http://localhost:4000/graphql";

function devKey(): string | undefined {
  try {
    return fs.readFileSync(".data/dev-key", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const apiKey = process.env.BILLING_API_KEY ?? devKey();
  if (!apiKey) {
    console.error("Set BILLING_API_KEY to one of the server's API_KEYS (a development server keeps its key in ./.data/dev-key).");
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

/** The network error's code (ECONNREFUSED, ENOTFOUND, ...), on the error or on its cause. */
function networkCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 3; e = e.cause as typeof e, i++) {
    if (typeof e.code === "string" && /^E[A-Z]+$/.test(e.code)) return e.code;
  }
  return undefined;
}

main().catch((err: unknown) => {
  const code = networkCode(err);
  if (err instanceof BillingApiError) console.error(`${err.code ?? "ERROR"}: ${err.message}${err.field ? ` (field ${err.field})` : ""}`);
  else if (code) console.error(`Cannot reach the billing server at ${url} (${code}): start it (npm start), or set BILLING_URL to its /graphql address.`);
  else console.error(err);
  process.exit(1);
});
