import { Harness, PAYMENT_FIELDS, registerCard, startHarness, TEST_CARDS, uid } from "../support/harness";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const CHARGE = `mutation Charge($input: ChargeAgainInput!) { chargeAgain(input: $input) { ${PAYMENT_FIELDS} } }`;

describe("chargeAgain", () => {
  it("charges a billing key and records the payment as PAID with Iamport's imp_uid", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const { chargeAgain } = await h.client.request<{ chargeAgain: Record<string, unknown> }>(CHARGE, {
      input: { customerUid, amount: 8900, name: "Monthly plan" },
    });
    expect(chargeAgain).toMatchObject({ customerUid, amount: 8900, paidAmount: 8900, status: "PAID", currency: "KRW", failReason: null });
    expect(chargeAgain.impUid).toMatch(/^imps_/);
    // Iamport agrees.
    const token = await h.iamportToken();
    const r = await h.emu.get(`/payments/${chargeAgain.impUid}`, { headers: { Authorization: token } });
    expect(r.data.response).toMatchObject({ merchant_uid: chargeAgain.merchantUid, status: "paid", amount: 8900 });
  });

  it("records a declined charge as FAILED with the reason, not as an error", async () => {
    const customerUid = await registerCard(h, uid("c"), TEST_CARDS.declined);
    const { chargeAgain } = await h.client.request<{ chargeAgain: Record<string, unknown> }>(CHARGE, {
      input: { customerUid, amount: 1000, name: "x" },
    });
    expect(chargeAgain.status).toBe("FAILED");
    expect(chargeAgain.failReason).toEqual(expect.any(String));
    expect(chargeAgain.paidAmount).toBeNull();
  });

  it("refuses a used merchantUid with another request (here another name) with CONFLICT and charges nothing more", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const merchantUid = uid("order");
    await h.client.request(CHARGE, { input: { customerUid, amount: 500, name: "once", merchantUid } });
    const again = await h.gql(CHARGE, { input: { customerUid, amount: 500, name: "twice", merchantUid } });
    expect(again.errors?.[0].extensions?.code).toBe("CONFLICT");
    const rows = await h.sql<{ n: string }>(`select count(*) as n from payments where merchant_uid = ?`, [merchantUid]);
    expect(Number(rows[0].n)).toBe(1);
  });

  it.each([
    [{ amount: 0 }, "amount"],
    [{ amount: -5 }, "amount"],
    [{ amount: 100_000_001 }, "amount"],
    [{ name: "   " }, "name"],
    [{ customerUid: "has space" }, "customerUid"],
    [{ merchantUid: "x".repeat(81) }, "merchantUid"],
  ])("answers BAD_USER_INPUT naming the field for %p", async (patch, field) => {
    const customerUid = await registerCard(h, uid("c"));
    const r = await h.gql(CHARGE, { input: { customerUid, amount: 1000, name: "ok", ...patch } });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
  });

  it("refuses an order named with the subscription charges' reserved prefix (sub_), in every mutation that takes a merchantUid", async () => {
    const customerUid = await registerCard(h, uid("c"));
    const merchantUid = `sub_${uid("s")}_p2_a1`;
    const charged = await h.gql(CHARGE, { input: { customerUid, amount: 1000, name: "foreign", merchantUid } });
    expect(charged.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "merchantUid" });
    const scheduled = await h.gql(
      `mutation S($input: SchedulePaymentsInput!) { schedulePayments(input: $input) { merchantUid } }`,
      { input: { customerUid, schedules: [{ scheduleAt: new Date(Date.now() + 3_600_000).toISOString(), amount: 1000, name: "foreign", merchantUid }] } },
    );
    expect(scheduled.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "schedules[0].merchantUid" });
    const prepared = await h.gql(`mutation P($input: PreparePaymentInput!) { preparePayment(input: $input) { merchantUid } }`, {
      input: { amount: 1000, name: "foreign", merchantUid },
    });
    expect(prepared.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "merchantUid" });
    const rows = await h.sql<{ n: string }>(`select count(*) as n from payments where merchant_uid = ?`, [merchantUid]);
    expect(Number(rows[0].n)).toBe(0);
  });

  it("answers NOT_FOUND for a customer without a card", async () => {
    const r = await h.gql(CHARGE, { input: { customerUid: uid("nobody"), amount: 1000, name: "x" } });
    expect(r.errors?.[0].extensions?.code).toBe("NOT_FOUND");
  });

  it("settles a charge whose answer timed out by its merchant_uid and charges once", async () => {
    const customerUid = await registerCard(h, uid("c"));
    await h.emu.post("/__emulator/faults", { route: "POST /subscribe/payments/again", mode: "timeout", times: 1 });
    const merchantUid = uid("slow");
    const { chargeAgain } = await h.client.request<{ chargeAgain: Record<string, unknown> }>(CHARGE, {
      input: { customerUid, amount: 2500, name: "slow", merchantUid },
    });
    expect(chargeAgain).toMatchObject({ merchantUid, status: "PAID", paidAmount: 2500 });
    const token = await h.iamportToken();
    const found = await h.emu.get(`/payments/find/${merchantUid}`, { headers: { Authorization: token } });
    expect(found.data.response.status).toBe("paid");
  });

  it("refreshes an expired token transparently", async () => {
    const customerUid = await registerCard(h, uid("c"));
    await h.emu.post("/__emulator/faults", { route: "*", mode: "expire_token", times: 1 });
    const { chargeAgain } = await h.client.request<{ chargeAgain: Record<string, unknown> }>(CHARGE, {
      input: { customerUid, amount: 700, name: "after expiry" },
    });
    expect(chargeAgain.status).toBe("PAID");
  });

  it("answers OUTCOME_UNKNOWN naming the merchantUid when Iamport fails the charge and the outcome cannot be settled; a repeat settles it", async () => {
    const customerUid = await registerCard(h, uid("c"));
    await h.emu.post("/__emulator/faults", { route: "*", mode: "http500", times: 3 });
    const merchantUid = uid("down");
    const r = await h.gql(CHARGE, { input: { customerUid, amount: 700, name: "down", merchantUid } });
    // A 500 to a charge may hide a charge made: nothing tells the caller it is safe to pay under a new merchantUid.
    expect(r.errors?.[0].extensions).toMatchObject({ code: "OUTCOME_UNKNOWN", merchantUid, retryable: true });
    const rows = await h.sql<{ status: string }>(`select status from payments where merchant_uid = ?`, [merchantUid]);
    expect(rows[0].status).toBe("PENDING");
    await h.emu.post("/__emulator/faults", { route: "*", mode: "http500", times: 0 });
    const again = await h.gql<{ chargeAgain: { status: string } }>(CHARGE, { input: { customerUid, amount: 700, name: "down", merchantUid } });
    expect(again.data?.chargeAgain.status).toBe("PAID");
  });
});
