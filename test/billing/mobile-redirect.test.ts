import { Harness, startHarness, uid } from "../support/harness";

/**
 * With MOBILE_REDIRECT_URL set, GET /payments/complete/mobile sends the browser
 * back to the shop with the verified merchant_uid and status. This server's
 * emulator also sends its webhooks as forms (an Iamport console option).
 */

const SHOP = "https://shop.example/return";
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { MOBILE_REDIRECT_URL: SHOP }, emulator: { webhookContentType: "form" } });
});
afterAll(async () => {
  await h?.close();
});

async function prepare(amount: number): Promise<string> {
  const merchantUid = uid("mob");
  await h.client.request(`mutation P($input: PreparePaymentInput!) { preparePayment(input: $input) { merchantUid } }`, {
    input: { amount, name: "Mobile order", merchantUid },
  });
  return merchantUid;
}

function target(location: string | undefined): URL {
  expect(location).toBeDefined();
  const url = new URL(location!);
  expect(`${url.origin}${url.pathname}`).toBe(SHOP);
  return url;
}

async function status(merchantUid: string): Promise<string | undefined> {
  return (await h.sql<{ status: string }>(`select status from payments where merchant_uid = ?`, [merchantUid]))[0]?.status;
}

describe("GET /payments/complete/mobile with MOBILE_REDIRECT_URL", () => {
  it("imp_success=true: 302 to the shop with merchant_uid and the verified status", async () => {
    const merchantUid = await prepare(8800);
    await h.emu.post("/__emulator/faults", { mode: "drop_webhook", times: 1 });
    const { data } = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount: 8800 });
    const r = await h.http.get("/payments/complete/mobile", { params: { imp_uid: data.imp_uid, merchant_uid: merchantUid, imp_success: "true" } });
    expect(r.status).toBe(302);
    const url = target(r.headers.location);
    expect(Object.fromEntries(url.searchParams)).toEqual({ merchant_uid: merchantUid, status: "PAID" });
    expect(await status(merchantUid)).toBe("PAID");
  });

  it("a forged amount is sent back as FORGERY_SUSPECTED whatever imp_success says", async () => {
    const merchantUid = await prepare(8800);
    const { data } = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount: 88, ignore_prepare: true });
    const r = await h.http.get("/payments/complete/mobile", { params: { imp_uid: data.imp_uid, merchant_uid: merchantUid, imp_success: "true" } });
    expect(r.status).toBe(302);
    expect(target(r.headers.location).searchParams.get("status")).toBe("FORGERY_SUSPECTED");
  });

  it("imp_success=false with error_msg and no imp_uid: 302 with status FAILED", async () => {
    const merchantUid = await prepare(8800);
    const r = await h.http.get("/payments/complete/mobile", { params: { merchant_uid: merchantUid, imp_success: "false", error_msg: "결제를 취소하였습니다" } });
    expect(r.status).toBe(302);
    expect(Object.fromEntries(target(r.headers.location).searchParams)).toEqual({ merchant_uid: merchantUid, status: "FAILED" });
    expect(await status(merchantUid)).toBe("PENDING");
  });

  it("an unknown payment is sent back as UNKNOWN, the merchant_uid encoded", async () => {
    const merchantUid = "shop:order@1";
    const r = await h.http.get("/payments/complete/mobile", { params: { imp_uid: "imp_000000000009", merchant_uid: merchantUid, imp_success: "true" } });
    expect(r.status).toBe(302);
    const url = target(r.headers.location);
    expect(Object.fromEntries(url.searchParams)).toEqual({ merchant_uid: merchantUid, status: "UNKNOWN" });
  });

  it.each([
    ["with an imp_uid", { imp_uid: "imp_000000000009" }, "UNKNOWN"],
    ["without an imp_uid", { imp_success: "false" }, "FAILED"],
  ])("ignores a merchant_uid that would inject parameters, not fit or not be storable, %s", async (_what, params, expected) => {
    for (const merchantUid of ["x&status=PAID", "m".repeat(150), "a\u0000b"]) {
      const r = await h.http.get("/payments/complete/mobile", { params: { ...params, merchant_uid: merchantUid } });
      expect(r.status).toBe(302);
      // Only the status goes back: the malformed merchant_uid is neither echoed nor allowed to add parameters.
      expect(Object.fromEntries(target(r.headers.location).searchParams)).toEqual({ status: expected });
    }
  });

  it("stores a return whose free text holds a NUL byte or a lone surrogate, cleaned", async () => {
    const merchantUid = await prepare(100);
    const r = await h.http.get(`/payments/complete/mobile?merchant_uid=${merchantUid}&imp_success=%00&error_code=%ED%A0%80&error_msg=a%00b`);
    expect(r.status).toBe(302);
    expect(Object.fromEntries(target(r.headers.location).searchParams)).toEqual({ merchant_uid: merchantUid, status: "FAILED" });
    const [ev] = await h.sql<{ body: Record<string, unknown> | string }>(`select body from webhook_events where merchant_uid = ?`, [merchantUid]);
    const body = typeof ev.body === "string" ? JSON.parse(ev.body) : ev.body;
    expect(body).toMatchObject({ merchant_uid: merchantUid, error_msg: "ab" });
    expect(JSON.stringify(body)).not.toMatch(/\\u0000/);
  });
});

describe("webhooks sent by the emulator as forms", () => {
  it("a checkout's form webhook marks the order PAID", async () => {
    const merchantUid = await prepare(1200);
    await h.emu.delete("/__emulator/webhooks");
    const { data } = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount: 1200 });
    expect(data.webhooks).toMatchObject({ delivered: 1, failed: 0 });
    const log = (await h.emu.get("/__emulator/webhooks")).data.webhooks as { content_type: string; status_code: number; body: { imp_uid: string } }[];
    expect(log).toEqual([expect.objectContaining({ content_type: "form", status_code: 200, body: expect.objectContaining({ imp_uid: data.imp_uid }) })]);
    expect(await status(merchantUid)).toBe("PAID");
    const ev = await h.sql<{ outcome: string; claimed_status: string }>(`select outcome, claimed_status from webhook_events where imp_uid = ?`, [data.imp_uid]);
    expect(ev).toEqual([{ outcome: "PAID", claimed_status: "paid" }]);
  });

  it("a virtual account goes READY then PAID through form webhooks", async () => {
    const merchantUid = await prepare(20_000);
    const { data } = await h.emu.post("/__emulator/checkout", { merchant_uid: merchantUid, amount: 20_000, pay_method: "vbank" });
    expect(await status(merchantUid)).toBe("READY");
    await h.emu.post("/__emulator/vbank/deposit", { imp_uid: data.imp_uid });
    expect(await status(merchantUid)).toBe("PAID");
  });
});
