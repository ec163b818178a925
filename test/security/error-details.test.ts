import { Harness, PAYMENT_FIELDS, registerCard, startHarness, uid } from "../support/harness";

/**
 * An internal error's message is generic in every mode, development included:
 * the database's message carries the statement with its values (imp_uid,
 * customer uid, amounts, Iamport's raw JSON). The detail goes to the log.
 */
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { NODE_ENV: "development" } });
});
afterAll(async () => {
  await h?.close();
});

const CHARGE = `mutation Charge($input: ChargeAgainInput!) { chargeAgain(input: $input) { ${PAYMENT_FIELDS} } }`;
const REFUND = `mutation Refund($input: RefundPaymentInput!) { refundPayment(input: $input) { ${PAYMENT_FIELDS} } }`;

it("answers a database failure in development with a generic message and logs the full error", async () => {
  expect(h.config.env).toBe("development");
  const customerUid = await registerCard(h, uid("leak_c"));
  const merchantUid = uid("leak_o");
  const { chargeAgain } = await h.client.request<{ chargeAgain: { impUid: string; status: string } }>(CHARGE, {
    input: { customerUid, amount: 8917, name: "leak probe", merchantUid },
  });
  expect(chargeAgain.status).toBe("PAID");

  // The database refuses to record the refund (after Iamport made it): an error the server did not foresee.
  await h.sql(`create function leak_probe_fail() returns trigger language plpgsql as $$
    begin raise exception 'simulated database failure'; end $$`);
  await h.sql(`create trigger leak_probe before update on payments for each row
    when (new.merchant_uid = '${merchantUid}' and new.cancelled_amount <> old.cancelled_amount) execute function leak_probe_fail()`);
  const logsBefore = h.logs.length;
  try {
    const r = await h.gql(REFUND, { input: { merchantUid, amount: 3011, reason: "probe" } });
    expect(r.errors).toHaveLength(1);
    expect(r.errors?.[0]).toMatchObject({ message: "Internal server error", extensions: { code: "INTERNAL_SERVER_ERROR" } });
    const answer = JSON.stringify(r.errors);
    for (const secret of [chargeAgain.impUid, customerUid, merchantUid, "8917", "3011", "update", "payments", "simulated"]) {
      expect({ secret, found: answer.includes(secret) }).toEqual({ secret, found: false });
    }
  } finally {
    await h.sql(`drop trigger leak_probe on payments`);
    await h.sql(`drop function leak_probe_fail()`);
  }
  // The log has what happened: the database's own message and the statement.
  const errors = h.logs
    .slice(logsBefore)
    .map((l) => JSON.parse(l) as { level: number; err?: { message?: string } })
    .filter((l) => l.level >= 50);
  expect(errors.some((l) => l.err?.message?.includes("simulated database failure") && /update "payments"/.test(l.err.message))).toBe(true);
});

it("logs the full error of a reconciliation step that fails, not the generic message", async () => {
  const customerUid = await registerCard(h, uid("leak_r")); // the server holds a valid token now
  const merchantUid = uid("leak_r_o");
  // Nothing reaches Iamport (no token): the charge stays PENDING, and after 10 minutes reconciliation fails it.
  await h.emu.post("/__emulator/faults", { route: "*", mode: "expire_token" });
  await h.emu.post("/__emulator/faults", { route: "POST /users/getToken", mode: "http500" });
  const r = await h.gql(CHARGE, { input: { customerUid, amount: 1234, name: "never made", merchantUid } });
  expect(r.errors?.[0].extensions?.code).toBe("UPSTREAM_UNAVAILABLE");
  await h.sql(`update payments set created_at = created_at - interval '11 minutes' where merchant_uid = ?`, [merchantUid]);
  await h.sql(`create function leak_probe_fail2() returns trigger language plpgsql as $$
    begin raise exception 'simulated reconciliation failure'; end $$`);
  await h.sql(`create trigger leak_probe2 before update on payments for each row
    when (new.merchant_uid = '${merchantUid}') execute function leak_probe_fail2()`);
  const logsBefore = h.logs.length;
  try {
    expect((await h.server.reconciler.runOnce()).errors).toBe(1);
  } finally {
    await h.sql(`drop trigger leak_probe2 on payments`);
    await h.sql(`drop function leak_probe_fail2()`);
  }
  const failed = h.logs
    .slice(logsBefore)
    .map((l) => JSON.parse(l) as { msg: string; err?: { message?: string } })
    .filter((l) => l.msg.startsWith("reconciliation step failed"));
  expect(failed).toHaveLength(1);
  expect(failed[0].err?.message).toContain("simulated reconciliation failure");
});
