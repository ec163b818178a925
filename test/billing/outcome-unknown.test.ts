import { Client } from "pg";
import { adminDatabaseUrl, Harness, PAYMENT_FIELDS, registerCard, startHarness, uid } from "../support/harness";
import { paymentRows, START, type Sub } from "../subscriptions/helpers";

/**
 * Once Iamport may have charged, a failure answers OUTCOME_UNKNOWN naming the
 * merchantUid (never INTERNAL_SERVER_ERROR, which invites a retry under a new
 * one); the PENDING row committed before the call is settled by reconciliation,
 * and a repeat under the same merchantUid never charges twice.
 */
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { RATE_LIMIT_PER_MINUTE: "0", RATE_LIMIT_PUBLIC_PER_MINUTE: "0" } });
});
afterAll(async () => {
  await h?.close();
});

const CHARGE = `mutation Charge($input: ChargeAgainInput!) { chargeAgain(input: $input) { ${PAYMENT_FIELDS} } }`;

interface Charged {
  merchantUid: string;
  impUid: string | null;
  status: string;
  paidAmount: number | null;
  failReason: string | null;
}

const charge = (input: Record<string, unknown>) => h.gql<{ chargeAgain: Charged }>(CHARGE, { input });
const fault = async (route: string, mode: string, times = 1) => {
  expect((await h.emu.post("/__emulator/faults", { route, mode, times })).status).toBe(201);
};
/** Payments the emulator has made (paid or declined) since the start. */
const emulatorPayments = async (): Promise<number> => (await h.emu.get<{ payments: number }>("/__emulator/health")).data.payments;
const atIamport = async (merchantUid: string) => {
  const token = await h.iamportToken();
  return h.emu.get(`/payments/find/${merchantUid}`, { headers: { Authorization: token } });
};
const row = async (merchantUid: string) =>
  (await h.sql<{ status: string; imp_uid: string | null; fail_reason: string | null }>(`select status, imp_uid, fail_reason from payments where merchant_uid = ?`, [merchantUid]))[0];
/** Makes a row look as old as reconciliation requires (it leaves charges that may still be in flight alone). */
const age = (merchantUid: string, seconds: number) =>
  h.sql(`update payments set created_at = created_at - make_interval(secs => ?) where merchant_uid = ?`, [seconds, merchantUid]);

/** Waits until the emulator holds the answer of a call (a "hold" fault); returns its id. */
async function heldCall(): Promise<number> {
  for (;;) {
    const held = (await h.emu.get<{ held: { id: number }[] }>("/__emulator/faults/held")).data.held;
    if (held.length > 0) return held[0].id;
  }
}

/**
 * The server loses its database: every backend of its database is terminated
 * and new connections are refused until the returned function restores them.
 */
async function loseDatabase(): Promise<() => Promise<void>> {
  const admin = new Client({ connectionString: adminDatabaseUrl() });
  await admin.connect();
  const db = new URL(h.config.databaseUrl!).pathname.slice(1);
  await admin.query(`alter database "${db}" allow_connections false`);
  const killed = await admin.query<{ done: boolean }>(
    `select pg_terminate_backend(pid, 5000) as done from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`,
    [db],
  );
  expect(killed.rows.length).toBeGreaterThan(0);
  expect(killed.rows.every((r) => r.done)).toBe(true);
  return async () => {
    await admin.query(`alter database "${db}" allow_connections true`);
    await admin.end();
  };
}

/**
 * Makes the database refuse to record a payment (merchant_uid LIKE the pattern) as `status`:
 * a failure right after Iamport answered. Returns the undo.
 */
async function refuseToRecordPaid(merchantUidLike: string, status = "PAID"): Promise<() => Promise<void>> {
  await h.sql(`create or replace function outcome_probe_fail() returns trigger language plpgsql as $$
    begin raise exception 'simulated: the database failed after the charge'; end $$`);
  await h.sql(`create trigger outcome_probe before update on payments for each row
    when (new.merchant_uid like '${merchantUidLike}' and new.status = '${status}') execute function outcome_probe_fail()`);
  return async () => {
    await h.sql(`drop trigger outcome_probe on payments`);
  };
}

// Terminating backends needs a PostgreSQL server: the embedded database is one in-process session
// that nothing can terminate. The trigger tests below stage the same failure on both databases.
const onPostgres = adminDatabaseUrl() ? it : it.skip;

describe("chargeAgain when the database is lost after Iamport charged", () => {
  onPostgres("answers OUTCOME_UNKNOWN with the merchantUid; a repeat under it returns the PAID payment without a second charge", async () => {
    const customerUid = await registerCard(h, uid("lost"));
    const merchantUid = uid("lost_o");
    const before = await emulatorPayments();
    await fault("*", "drop_webhook"); // nothing else tells the server about the charge
    await fault("POST /subscribe/payments/again", "hold");
    const answer = charge({ customerUid, amount: 4100, name: "lost db", merchantUid });
    const held = await heldCall();
    // Iamport has charged; the server has not heard it yet. Now its database goes away.
    expect((await atIamport(merchantUid)).data.response.status).toBe("paid");
    const restore = await loseDatabase();
    let r;
    try {
      expect((await h.emu.post("/__emulator/faults/release", { id: held })).data).toEqual({ released: 1 });
      r = await answer;
    } finally {
      await restore();
    }
    expect(r.data?.chargeAgain ?? null).toBeNull();
    expect(r.errors?.[0].extensions).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUid, retryable: true });
    expect(r.errors?.[0].message).toContain(merchantUid);
    expect(await emulatorPayments()).toBe(before + 1);
    // The row committed before the call is still PENDING.
    expect((await row(merchantUid)).status).toBe("PENDING");

    // The client repeats under the same merchantUid: settled with Iamport, not charged again.
    const again = await charge({ customerUid, amount: 4100, name: "lost db", merchantUid });
    expect(again.errors).toBeUndefined();
    expect(again.data?.chargeAgain).toMatchObject({ merchantUid, status: "PAID", paidAmount: 4100 });
    expect(again.data?.chargeAgain.impUid).toBe((await atIamport(merchantUid)).data.response.imp_uid);
    expect(await emulatorPayments()).toBe(before + 1);
  });

  onPostgres("a subscription's first charge: OUTCOME_UNKNOWN naming the payment and the subscription; reconciliation activates it", async () => {
    const customerUid = await registerCard(h, uid("lostsub"));
    const before = await emulatorPayments();
    await fault("*", "drop_webhook");
    await fault("POST /subscribe/payments/again", "hold");
    const answer = h.gql<{ startSubscription: Sub }>(START, { input: { customerUid, name: "Plan", amount: 9900, interval: "MONTH" } });
    const held = await heldCall();
    const restore = await loseDatabase();
    let r;
    try {
      await h.emu.post("/__emulator/faults/release", { id: held });
      r = await answer;
    } finally {
      await restore();
    }
    const ext = r.errors?.[0].extensions;
    expect(ext).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUid: expect.stringMatching(/^sub_.+_p1_a1$/), subscriptionId: expect.any(String) });
    // Starting again would create and charge a second subscription: the answer says not to.
    expect(ext?.retryable).toBe(false);
    expect(r.errors?.[0].message).toContain(`query subscription ${ext?.subscriptionId as string}`);
    expect(await emulatorPayments()).toBe(before + 1);
    const merchantUid = ext?.merchantUid as string;
    expect((await row(merchantUid)).status).toBe("PENDING");

    await age(merchantUid, 60);
    const report = await h.server.reconciler.runOnce();
    expect(report.pendingCharges).toBeGreaterThanOrEqual(1);
    const rows = await paymentRows(h, ext?.subscriptionId as string);
    expect(rows.map((p) => [p.period, p.status])).toEqual([
      [1, "PAID"],
      [2, "SCHEDULED"],
    ]);
    const sub = await h.sql<{ status: string }>(`select status from subscriptions where id = ?`, [ext?.subscriptionId]);
    expect(sub[0].status).toBe("ACTIVE");
    expect(await emulatorPayments()).toBe(before + 1);
  });
});

describe("chargeAgain when the database fails to record the charge", () => {
  it("answers OUTCOME_UNKNOWN; reconciliation settles the PENDING row as PAID; a repeat returns it without charging", async () => {
    const customerUid = await registerCard(h, uid("rec"));
    const merchantUid = uid("recfail_o");
    const before = await emulatorPayments();
    await fault("*", "drop_webhook");
    const undo = await refuseToRecordPaid("recfail_%");
    let r;
    try {
      r = await charge({ customerUid, amount: 5200, name: "unrecorded", merchantUid });
    } finally {
      await undo();
    }
    expect(r.errors?.[0].extensions).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUid, retryable: true });
    expect(await emulatorPayments()).toBe(before + 1);
    expect((await row(merchantUid)).status).toBe("PENDING");
    // The full error is in the log.
    expect(h.logs.some((l) => l.includes("simulated: the database failed after the charge") && l.includes(merchantUid))).toBe(true);

    await age(merchantUid, 60);
    const report = await h.server.reconciler.runOnce();
    expect(report.pendingCharges).toBeGreaterThanOrEqual(1);
    const settled = await row(merchantUid);
    expect(settled).toMatchObject({ status: "PAID", imp_uid: (await atIamport(merchantUid)).data.response.imp_uid });

    const again = await charge({ customerUid, amount: 5200, name: "unrecorded", merchantUid });
    expect(again.data?.chargeAgain).toMatchObject({ merchantUid, status: "PAID", impUid: settled.imp_uid });
    expect(await emulatorPayments()).toBe(before + 1);
  });

  it("a subscription's first charge: the subscription stays INCOMPLETE and reconciliation activates it", async () => {
    const customerUid = await registerCard(h, uid("recsub"));
    const before = await emulatorPayments();
    await fault("*", "drop_webhook");
    const undo = await refuseToRecordPaid("sub_%_p1_a1");
    let r;
    try {
      r = await h.gql<{ startSubscription: Sub }>(START, { input: { customerUid, name: "Plan", amount: 9900, interval: "MONTH" } });
    } finally {
      await undo();
    }
    expect(r.errors).toBeUndefined();
    const sub = r.data!.startSubscription;
    expect(sub).toMatchObject({ status: "INCOMPLETE", statusReason: expect.stringContaining("reconciliation") });
    expect(await emulatorPayments()).toBe(before + 1);
    const [first] = await paymentRows(h, sub.id);
    expect(first.status).toBe("PENDING");

    await age(first.merchant_uid, 60);
    await h.server.reconciler.runOnce();
    expect((await paymentRows(h, sub.id)).map((p) => [p.period, p.status])).toEqual([
      [1, "PAID"],
      [2, "SCHEDULED"],
    ]);
    expect(await emulatorPayments()).toBe(before + 1);
  });
});

describe("chargeAgain when Iamport's answer is lost", () => {
  it("answers OUTCOME_UNKNOWN with the merchantUid when the charge timed out and Iamport cannot be asked about it", async () => {
    const customerUid = await registerCard(h, uid("slow"));
    const merchantUid = uid("slow_o");
    const before = await emulatorPayments();
    await fault("*", "drop_webhook");
    await fault("POST /subscribe/payments/again", "timeout");
    await fault("GET /payments/find/{merchant_uid}", "http500");
    const r = await charge({ customerUid, amount: 3300, name: "slow", merchantUid });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUid });
    expect((await row(merchantUid)).status).toBe("PENDING");
    // Charged at Iamport (the timeout fault takes effect); the repeat finds it there.
    const again = await charge({ customerUid, amount: 3300, name: "slow", merchantUid });
    expect(again.data?.chargeAgain).toMatchObject({ merchantUid, status: "PAID" });
    expect(await emulatorPayments()).toBe(before + 1);
  });

  it("answers UPSTREAM_UNAVAILABLE when nothing was sent (no token); a repeat charges it once under the same merchantUid", async () => {
    const customerUid = await registerCard(h, uid("notoken")); // the server holds a valid token now
    const merchantUid = uid("notoken_o");
    const before = await emulatorPayments();
    await fault("*", "expire_token");
    await fault("POST /users/getToken", "http500");
    const r = await charge({ customerUid, amount: 2200, name: "no token", merchantUid });
    expect(r.errors?.[0].extensions?.code).toBe("UPSTREAM_UNAVAILABLE");
    expect((await h.emu.get("/__emulator/faults")).data.faults).toEqual([]);
    expect(await emulatorPayments()).toBe(before);
    expect((await row(merchantUid)).status).toBe("PENDING");

    const again = await charge({ customerUid, amount: 2200, name: "no token", merchantUid });
    expect(again.data?.chargeAgain).toMatchObject({ merchantUid, status: "PAID", paidAmount: 2200 });
    expect(await emulatorPayments()).toBe(before + 1);
  });

  it("keeps a charge Iamport never saw PENDING for 10 minutes, then FAILED; a repeat then answers the FAILED payment", async () => {
    const customerUid = await registerCard(h, uid("never"));
    const merchantUid = uid("never_o");
    const before = await emulatorPayments();
    await fault("*", "expire_token");
    await fault("POST /users/getToken", "http500");
    expect((await charge({ customerUid, amount: 1100, name: "never", merchantUid })).errors?.[0].extensions?.code).toBe("UPSTREAM_UNAVAILABLE");

    await age(merchantUid, 9 * 60);
    await h.server.reconciler.runOnce();
    expect((await row(merchantUid)).status).toBe("PENDING");
    await age(merchantUid, 2 * 60);
    await h.server.reconciler.runOnce();
    expect(await row(merchantUid)).toMatchObject({ status: "FAILED", fail_reason: expect.stringContaining("no record") });

    const again = await charge({ customerUid, amount: 1100, name: "never", merchantUid });
    expect(again.data?.chargeAgain).toMatchObject({ merchantUid, status: "FAILED" });
    expect(await emulatorPayments()).toBe(before);
  });
});

describe("chargeAgain repeated under the same merchantUid", () => {
  it("answers the stored payment for the same request and CONFLICT for a different one, charging once", async () => {
    const customerUid = await registerCard(h, uid("rep"));
    const other = await registerCard(h, uid("rep"));
    const merchantUid = uid("rep_o");
    const before = await emulatorPayments();
    const first = await charge({ customerUid, amount: 900, name: "once", merchantUid });
    expect(first.data?.chargeAgain.status).toBe("PAID");
    const same = await charge({ customerUid, amount: 900, name: "once", merchantUid });
    const { merchantUid: m, impUid, status, paidAmount } = first.data!.chargeAgain;
    expect(same.data?.chargeAgain).toMatchObject({ merchantUid: m, impUid, status, paidAmount });
    for (const patch of [{ amount: 901 }, { name: "twice" }, { customerUid: other }]) {
      const r = await charge({ customerUid, amount: 900, name: "once", merchantUid, ...patch });
      expect({ patch, error: r.errors?.[0].extensions }).toEqual({ patch, error: expect.objectContaining({ code: "CONFLICT", merchantUid }) });
    }
    expect(await emulatorPayments()).toBe(before + 1);
  });

  it("charges once when the same request arrives several times at once", async () => {
    const customerUid = await registerCard(h, uid("dup"));
    const merchantUid = uid("dup_o");
    const before = await emulatorPayments();
    const results = await Promise.all(Array.from({ length: 6 }, () => charge({ customerUid, amount: 1300, name: "burst", merchantUid })));
    expect(results.map((r) => r.errors?.[0].extensions?.code ?? r.data?.chargeAgain.status)).toEqual(Array(6).fill("PAID"));
    expect(new Set(results.map((r) => r.data?.chargeAgain.impUid)).size).toBe(1);
    expect(await emulatorPayments()).toBe(before + 1);
  });
});

describe("other calls after which Iamport holds money or a schedule", () => {
  it("verifyPayment: a paid checkout the database fails to record answers OUTCOME_UNKNOWN; verifying again records it", async () => {
    const merchantUid = uid("vfail_o");
    await h.client.request(`mutation { preparePayment(input: { amount: 7700, name: "Order", merchantUid: "${merchantUid}" }) { status } }`);
    await fault("*", "drop_webhook");
    const paid = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount: 7700 });
    expect(paid.data.status).toBe("paid");
    const VERIFY = `mutation V($input: VerifyPaymentInput!) { verifyPayment(input: $input) { outcome payment { status } } }`;
    const undo = await refuseToRecordPaid("vfail_%");
    let r;
    try {
      r = await h.gql(VERIFY, { input: { impUid: paid.data.imp_uid, merchantUid } });
    } finally {
      await undo();
    }
    expect(r.errors?.[0].extensions).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUid });
    expect((await row(merchantUid)).status).toBe("PENDING");
    const again = await h.gql<{ verifyPayment: { outcome: string; payment: { status: string } } }>(VERIFY, { input: { impUid: paid.data.imp_uid, merchantUid } });
    expect(again.data?.verifyPayment).toEqual({ outcome: "PAID", payment: { status: "PAID" } });
  });

  it("schedulePayments: a registration the database fails to record answers OUTCOME_UNKNOWN; the same request again answers the rows, registered once", async () => {
    const customerUid = await registerCard(h, uid("sfail"));
    const merchantUid = uid("sfail_o");
    const scheduleAt = new Date(((await h.emu.get<{ now: number }>("/__emulator/clock")).data.now + 7200) * 1000).toISOString();
    const SCHEDULE = `mutation S($input: SchedulePaymentsInput!) { schedulePayments(input: $input) { merchantUid status } }`;
    const input = { customerUid, schedules: [{ scheduleAt, amount: 6600, name: "later", merchantUid }] };
    const undo = await refuseToRecordPaid("sfail_%", "SCHEDULED");
    let r;
    try {
      r = await h.gql(SCHEDULE, { input });
    } finally {
      await undo();
    }
    expect(r.errors?.[0].extensions).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUid, merchantUids: [merchantUid] });
    expect((await row(merchantUid)).status).toBe("PENDING");
    const token = await h.iamportToken();
    const atIamportSchedule = () => h.emu.get(`/subscribe/payments/schedule/${merchantUid}`, { headers: { Authorization: token } });
    expect((await atIamportSchedule()).data.response.schedule_status).toBe("scheduled");

    const again = await h.gql<{ schedulePayments: { merchantUid: string; status: string }[] }>(SCHEDULE, { input });
    expect(again.data?.schedulePayments).toEqual([{ merchantUid, status: "SCHEDULED" }]);
    expect((await atIamportSchedule()).data.response.schedule_status).toBe("scheduled");
    // Another request under the same merchantUid is still a conflict.
    const other = await h.gql(SCHEDULE, { input: { ...input, schedules: [{ ...input.schedules[0], amount: 6601 }] } });
    expect(other.errors?.[0].extensions?.code).toBe("CONFLICT");
  });
});
