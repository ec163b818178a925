import { Harness, startHarness, uid } from "../support/harness";

/**
 * Lost webhooks of browser payments: a card checkout whose webhook (and
 * browser callback) never arrived, and a virtual-account deposit whose webhook
 * was lost, are found by reconciliation, verified like a webhook would be.
 */
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const PREPARE = `mutation($input: PreparePaymentInput!) { preparePayment(input: $input) { merchantUid status } }`;
const status = async (merchantUid: string) =>
  (await h.sql<{ status: string; paid_amount: number | null }>(`select status, paid_amount from payments where merchant_uid = ?`, [merchantUid]))[0];
const dropNextWebhook = async () => expect((await h.emu.post("/__emulator/faults", { mode: "drop_webhook", times: 1 })).status).toBe(201);
/** Past the grace period that protects calls in flight (the server's own clock cannot be moved). */
const age = () =>
  h.sql(`update payments set created_at = created_at - interval '11 minutes', checked_at = checked_at - interval '11 minutes' where kind = 'CHECKOUT'`);

it("settles a paid card checkout whose webhook was lost", async () => {
  const merchantUid = uid("lost");
  await h.client.request(PREPARE, { input: { amount: 12000, name: "Order", merchantUid } });
  await dropNextWebhook();
  const paid = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount: 12000 });
  expect(paid.data.webhooks.dropped).toBe(1);
  expect((await status(merchantUid)).status).toBe("PENDING");
  await age();
  const report = await h.server.reconciler.runOnce();
  expect(report).toMatchObject({ checkouts: 1, errors: 0 });
  expect(await status(merchantUid)).toEqual({ status: "PAID", paid_amount: 12000 });
});

it("settles a virtual-account deposit whose webhook was lost, and leaves unpaid orders alone", async () => {
  const merchantUid = uid("vb");
  const unpaid = uid("never");
  await h.client.request(PREPARE, { input: { amount: 30000, name: "Order", merchantUid } });
  await h.client.request(PREPARE, { input: { amount: 5000, name: "Abandoned", merchantUid: unpaid } });
  const issued = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount: 30000, pay_method: "vbank" });
  expect((await status(merchantUid)).status).toBe("READY");
  await dropNextWebhook();
  await h.emu.post("/__emulator/vbank/deposit", { imp_uid: issued.data.imp_uid });
  expect((await status(merchantUid)).status).toBe("READY");
  await age();
  const report = await h.server.reconciler.runOnce();
  expect(report.errors).toBe(0);
  expect(await status(merchantUid)).toEqual({ status: "PAID", paid_amount: 30000 });
  expect((await status(unpaid)).status).toBe("PENDING");
  // The abandoned order is not asked about again on the next run (it was checked a moment ago).
  expect((await h.server.reconciler.runOnce()).checkouts).toBe(0);
});
