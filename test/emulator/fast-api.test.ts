import http from "node:http";
import { API_KEY, API_SECRET, CARD, startTestEmulator, uid, type Envelope, type TestEmulator } from "./helpers";

/** A request with exactly these headers and bytes (axios would add or rewrite some). */
function raw(base: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; body: Envelope }> {
  return new Promise((resolve, reject) => {
    // The path as given, fragment included (a URL object would drop it).
    const { hostname, port } = new URL(base);
    const req = http.request({ hostname, port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Envelope }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

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

  it("reads bodies and URLs as Express does: a byte-order mark, an empty body with a charset, a fragment", async () => {
    const creds = Buffer.from(JSON.stringify({ imp_key: API_KEY, imp_secret: API_SECRET }));
    const bom = await raw(t.emulator.url, "POST", "/users/getToken", { "Content-Type": "application/json" }, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), creds]));
    expect(bom.status).toBe(200);
    expect(bom.body.code).toBe(0);

    const latin1 = await raw(t.emulator.url, "POST", "/users/getToken", { "Content-Type": "application/json; charset=latin1", "Content-Length": "0" });
    expect(latin1.status).toBe(415);
    expect(latin1.body).toEqual({ code: -1, message: expect.stringContaining("unsupported charset"), response: null });
    // An empty JSON body is {} on both paths (the form goes through Express).
    const empty = await raw(t.emulator.url, "POST", "/users/getToken", { "Content-Type": "application/json", "Content-Length": "0" });
    const emptyForm = await raw(t.emulator.url, "POST", "/users/getToken", { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": "0" });
    expect(empty.status).toBe(401);
    expect(empty).toEqual(emptyForm);

    const paid = await t.http.post<{ imp_uid: string }>("/__emulator/checkout", { merchant_uid: uid("m"), amount: 1000, ignore_prepare: true });
    expect(paid.status).toBe(200);
    const auth = { Authorization: `Bearer ${await t.token()}` };
    const plain = await raw(t.emulator.url, "GET", `/payments/${paid.data.imp_uid}`, auth);
    const fragment = await raw(t.emulator.url, "GET", `/payments/${paid.data.imp_uid}#part`, auth);
    expect(plain.status).toBe(200);
    expect(fragment).toEqual(plain);
  });

  it("leaves the control API to Express, whatever the case of its path", async () => {
    expect((await t.http.get("/__EMULATOR/health")).status).toBe(200);
    expect((await t.http.get("/__emulator/health")).status).toBe(200);
  });
});
