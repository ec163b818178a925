import { API_KEY, CARD, startTestEmulator, uid, type Envelope, type TestEmulator } from "./helpers";

/**
 * JSON calls are served from node:http (src/emulator/fast-api.ts), forms and
 * everything else through Express: both must answer alike.
 */
describe("emulator: JSON calls without Express answer as the Express path does", () => {
  let t: TestEmulator;
  beforeAll(async () => {
    t = await startTestEmulator();
  });
  afterAll(() => t.close());
  beforeEach(() => t.http.post("/__emulator/reset"));

  const form = (o: Record<string, string>) => new URLSearchParams(o).toString();
  const FORM = { "Content-Type": "application/x-www-form-urlencoded" };

  it("gives the same answers to a call as JSON and as a form, for success and for each refusal", async () => {
    const viaJson = await t.http.post<Envelope>("/users/getToken", { imp_key: API_KEY, imp_secret: "wrong" });
    const viaForm = await t.http.post<Envelope>("/users/getToken", form({ imp_key: API_KEY, imp_secret: "wrong" }), { headers: FORM });
    expect(viaJson.status).toBe(401);
    expect(viaForm.status).toBe(viaJson.status);
    expect(viaForm.data).toEqual(viaJson.data);
    expect(viaJson.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(viaForm.headers["content-type"]).toBe(viaJson.headers["content-type"]);
    expect(viaJson.headers.etag).toBeUndefined();
    expect(viaJson.headers["x-powered-by"]).toBeUndefined();

    const token = await t.token();
    const auth = { Authorization: `Bearer ${token}` };
    const customer = uid("c");
    const body = { card_number: CARD.card_number, expiry: CARD.expiry, birth: CARD.birth, pwd_2digit: CARD.pwd_2digit };
    const a = await t.http.post<Envelope<{ customer_uid: string }>>(`/subscribe/customers/${customer}`, body, { headers: auth });
    const b = await t.http.post<Envelope<{ customer_uid: string }>>(`/subscribe/customers/${customer}_f`, form(body), { headers: { ...auth, ...FORM } });
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.data.response.customer_uid).toBe(customer);
    expect(b.data.response.customer_uid).toBe(`${customer}_f`);

    // A missing field, a GET with a query, and an empty JSON body (read as {}, as express.json() does).
    const missing = await t.http.post<Envelope>("/subscribe/payments/again", { customer_uid: customer, amount: 1000 }, { headers: auth });
    const missingForm = await t.http.post<Envelope>("/subscribe/payments/again", form({ customer_uid: customer, amount: "1000" }), { headers: { ...auth, ...FORM } });
    expect(missing.status).toBe(400);
    expect(missingForm.data).toEqual(missing.data);
    const empty = await t.http.post<Envelope>("/subscribe/payments/again", "", {
      headers: { ...auth, "Content-Type": "application/json" },
      transformRequest: [(d: unknown) => d],
    });
    expect(empty.status).toBe(400);
    expect(empty.data.message).toContain("customer_uid");
    const listed = await t.http.get<Envelope>(`/subscribe/payments/schedule/customers/${customer}?from=0&to=1`, { headers: auth });
    expect(listed.status).toBe(200);
  });

  it("refuses JSON that is not an object or array, as express.json() does", async () => {
    const token = await t.token();
    for (const raw of ['"a string"', "123", "null", "  true"]) {
      const r = await t.http.post<Envelope>("/subscribe/payments/again", raw, { headers: { Authorization: token, "Content-Type": "application/json" } });
      expect(r.status).toBe(400);
      expect(r.data).toEqual({ code: -1, message: expect.stringContaining("malformed JSON"), response: null });
    }
  });

  it("leaves the control API to Express, whatever the case of its path", async () => {
    expect((await t.http.get("/__EMULATOR/health")).status).toBe(200);
    expect((await t.http.get("/__emulator/health")).status).toBe(200);
  });
});
