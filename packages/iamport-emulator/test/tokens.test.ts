import { advance, API_KEY, API_SECRET, startTestEmulator, uid, type Envelope, type TestEmulator } from "./helpers";

interface TokenAnswer {
  access_token: string;
  now: number;
  expired_at: number;
}

describe("emulator: tokens, auth and request handling", () => {
  let t: TestEmulator;
  beforeAll(async () => {
    t = await startTestEmulator();
  });
  afterAll(() => t.close());
  beforeEach(() => t.http.post("/__emulator/reset"));

  const getToken = async () => {
    const r = await t.http.post<Envelope<TokenAnswer>>("/users/getToken", { imp_key: API_KEY, imp_secret: API_SECRET });
    expect(r.status).toBe(200);
    expect(r.data.code).toBe(0);
    return r.data.response;
  };

  it("issues a 30-minute token in the envelope, with integer times on the emulator clock", async () => {
    const clock = async () => (await t.http.get<{ now: number }>("/__emulator/clock")).data.now;
    const before = await clock();
    const a = await getToken();
    const after = await clock();
    expect(a.access_token).toMatch(/^[0-9a-f]{40}$/);
    expect(Number.isInteger(a.now)).toBe(true);
    expect(a.expired_at - a.now).toBe(1800);
    // Issued by the emulator's clock, during the call.
    expect(a.now).toBeGreaterThanOrEqual(before);
    expect(a.now).toBeLessThanOrEqual(after);
  });

  it("returns the same token before expiry, extends it in the last minute, and issues a new one after expiry", async () => {
    const a = await getToken();
    await advance(t, 600);
    const b = await getToken();
    expect(b.access_token).toBe(a.access_token);
    expect(b.expired_at).toBe(a.expired_at);

    await advance(t, 1800 - 600 - 30); // 30 s before expiry
    const c = await getToken();
    expect(c.access_token).toBe(a.access_token);
    expect(c.expired_at).toBe(a.expired_at + 300);

    await advance(t, 400); // past the extended expiry
    const d = await getToken();
    expect(d.access_token).not.toBe(a.access_token);
    expect(d.expired_at - d.now).toBe(1800);
    // The old token is no longer accepted.
    const r = await t.http.get("/payments/imps_nothing", { headers: { Authorization: a.access_token } });
    expect(r.status).toBe(401);
  });

  it("answers 401 in the envelope for wrong or missing credentials", async () => {
    const wrong = await t.http.post<Envelope>("/users/getToken", { imp_key: API_KEY, imp_secret: "nope" });
    expect(wrong.status).toBe(401);
    expect(wrong.data.code).not.toBe(0);
    expect(wrong.data.response).toBeNull();
    expect(typeof wrong.data.message).toBe("string");
    const missing = await t.http.post<Envelope>("/users/getToken", {});
    expect(missing.status).toBe(401);
    expect(missing.data.code).not.toBe(0);
  });

  it("accepts credentials as a form body", async () => {
    const r = await t.http.post<Envelope<TokenAnswer>>(
      "/users/getToken",
      new URLSearchParams({ imp_key: API_KEY, imp_secret: API_SECRET }).toString(),
      { headers: { "Content-Type": "application/x-www-form-urlencoded" } },
    );
    expect(r.status).toBe(200);
    expect(r.data.response.access_token).toBeTruthy();
  });

  it("accepts both `Authorization: <token>` and `Authorization: Bearer <token>`; rejects missing, invalid and expired", async () => {
    const { access_token } = await getToken();
    const plain = await t.http.get<Envelope>("/payments/imps_unknown", { headers: { Authorization: access_token } });
    const bearer = await t.http.get<Envelope>("/payments/imps_unknown", { headers: { Authorization: `Bearer ${access_token}` } });
    // Authenticated, so we get past auth to the 404 of an unknown payment.
    expect(plain.status).toBe(404);
    expect(bearer.status).toBe(404);

    const none = await t.http.get<Envelope>("/payments/imps_unknown");
    expect(none.status).toBe(401);
    expect(none.data).toEqual({ code: -1, message: expect.any(String), response: null });
    const bad = await t.http.get<Envelope>("/payments/imps_unknown", { headers: { Authorization: "Bearer not-a-token" } });
    expect(bad.status).toBe(401);

    await advance(t, 1801);
    const expired = await t.http.get<Envelope>("/payments/imps_unknown", { headers: { Authorization: access_token } });
    expect(expired.status).toBe(401);
  });

  it("answers malformed JSON with a 400 envelope, not a 500", async () => {
    const token = await t.token();
    const r = await t.http.post<Envelope>("/subscribe/payments/again", '{"customer_uid": "x", broken', {
      headers: { Authorization: token, "Content-Type": "application/json" },
    });
    expect(r.status).toBe(400);
    expect(r.data.code).not.toBe(0);
    expect(r.data.response).toBeNull();
    // The emulator is still healthy afterwards.
    expect((await t.http.get("/__emulator/health")).status).toBe(200);
  });

  it("answers unknown routes with a 404 envelope and wrong methods with 405", async () => {
    const r = await t.api.get<Envelope>("/no/such/route");
    expect(r.status).toBe(404);
    expect(r.data.code).not.toBe(0);
    expect(r.data.response).toBeNull();
    const m = await t.api.patch<Envelope>("/payments/cancel", {});
    expect(m.status).toBe(405);
    expect(m.data.response).toBeNull();
  });

  it("answers missing and mistyped parameters with Iamport-style 400 messages naming the field", async () => {
    const missing = await t.api.post<Envelope>("/subscribe/payments/again", { merchant_uid: uid("m"), amount: 1000, name: "x" });
    expect(missing.status).toBe(400);
    expect(missing.data.message).toContain("customer_uid");
    const typed = await t.api.post<Envelope>("/subscribe/payments/again", {
      customer_uid: "c",
      merchant_uid: uid("m"),
      amount: "a lot",
      name: "x",
    });
    expect(typed.status).toBe(400);
    expect(typed.data.message).toContain("amount");
    const negative = await t.api.post<Envelope>("/subscribe/payments/again", { customer_uid: "c", merchant_uid: uid("m"), amount: -5, name: "x" });
    expect(negative.status).toBe(400);
    const arrayBody = await t.api.post<Envelope>("/subscribe/payments/again", [1, 2]);
    expect(arrayBody.status).toBe(400);
    const badEncoding = await t.api.get<Envelope>("/payments/%E0%A4%A");
    expect(badEncoding.status).toBe(400);
  });

  it("adds artificial latency to Iamport calls but not to the control API", async () => {
    const slow = await startTestEmulator({ latencyMs: 300 });
    try {
      // Started first, answered last: the Iamport call waits out its latency, the control call does not.
      const order: string[] = [];
      await Promise.all([
        slow.http.post("/users/getToken", { imp_key: API_KEY, imp_secret: API_SECRET }).then(() => order.push("iamport")),
        slow.http.get("/__emulator/clock").then(() => order.push("control")),
      ]);
      expect(order).toEqual(["control", "iamport"]);
    } finally {
      await slow.close();
    }
  });
});
