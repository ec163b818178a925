import axios from "axios";
import { advance, API_KEY, API_SECRET, clockNow, issueKey, startTestEmulator, uid, WebhookReceiver, type Envelope, type TestEmulator } from "./helpers";

interface FaultList {
  faults: Array<{ id: number; route: string; mode: string; remaining: number }>;
}

describe("emulator: fault injection", () => {
  let t: TestEmulator;
  let hooks: WebhookReceiver;
  beforeAll(async () => {
    hooks = await new WebhookReceiver().start();
    t = await startTestEmulator({ webhookUrl: hooks.url, timeoutHoldMs: 3000 });
  });
  afterAll(async () => {
    await t.close();
    await hooks.close();
  });
  beforeEach(() => t.http.post("/__emulator/reset"));

  const fault = (body: Record<string, unknown>) => t.http.post<FaultList & { error?: string }>("/__emulator/faults", body);
  const charge = (customer_uid: string, merchant_uid: string) =>
    t.api.post<Envelope<{ status: string; imp_uid: string }>>("/subscribe/payments/again", { customer_uid, merchant_uid, amount: 1000, name: "x" });

  it("http500: the next call answers a 500 envelope and has no effect; then calls work again", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    expect((await fault({ route: "POST /subscribe/payments/again", mode: "http500" })).status).toBe(201);
    const mu = uid("order");
    const r = await charge(cu, mu);
    expect(r.status).toBe(500);
    expect(r.data).toEqual({ code: -1, message: expect.any(String), response: null });
    expect((await t.api.get(`/payments/find/${mu}`)).status).toBe(404);
    const retry = await charge(cu, mu);
    expect(retry.status).toBe(200);
    expect(retry.data.response.status).toBe("paid");
  });

  it("honours `times` and lists pending faults", async () => {
    await fault({ route: "GET /payments/{imp_uid}", mode: "http500", times: 2 });
    expect((await t.http.get<FaultList>("/__emulator/faults")).data.faults).toEqual([
      { id: expect.any(Number), route: "GET /payments/{imp_uid}", mode: "http500", remaining: 2 },
    ]);
    expect((await t.api.get("/payments/imps_a")).status).toBe(500);
    expect((await t.api.get("/payments/imps_b")).status).toBe(500);
    expect((await t.api.get("/payments/imps_c")).status).toBe(404);
    expect((await t.http.get<FaultList>("/__emulator/faults")).data.faults).toEqual([]);
  });

  it("matches literal paths exactly and templates by shape", async () => {
    await fault({ route: "GET /payments/imps_target", mode: "http500" });
    expect((await t.api.get("/payments/imps_other")).status).toBe(404);
    expect((await t.api.get("/payments/imps_target")).status).toBe(500);

    // A template matches whatever its parameters are named.
    await fault({ route: "GET /payments/find/{order}/{status}", mode: "http500" });
    expect((await t.api.get("/payments/find/anything/paid")).status).toBe(500);
    // The optional-status form of the route shares the route, so its template matches it too.
    await fault({ route: "GET /payments/find/{merchant_uid}", mode: "http500" });
    expect((await t.api.get("/payments/find/anything/paid")).status).toBe(500);
  });

  it("`*` hits any Iamport call (getToken included) but never the control API", async () => {
    await fault({ route: "*", mode: "http500" });
    expect((await t.http.get("/__emulator/clock")).status).toBe(200);
    expect((await t.http.get("/__emulator/health")).status).toBe(200);
    const r = await t.http.post<Envelope>("/users/getToken", { imp_key: API_KEY, imp_secret: API_SECRET });
    expect(r.status).toBe(500);
    expect((await t.http.post("/users/getToken", { imp_key: API_KEY, imp_secret: API_SECRET })).status).toBe(200);
  });

  it("timeout: the call takes effect but the answer never comes; the order is then found paid and cannot be charged again", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    await fault({ route: "POST /subscribe/payments/again", mode: "timeout" });
    const mu = uid("order");
    const token = await t.token();
    // The client gives up once the charge is on record, not after a fixed wait: a fixed client timeout could
    // expire before a busy process has even read the request, and then there would be nothing to find.
    const giveUp = new AbortController();
    const call = axios.post(
      "/subscribe/payments/again",
      { customer_uid: cu, merchant_uid: mu, amount: 1000, name: "x" },
      { baseURL: t.emulator.url, headers: { Authorization: token }, signal: giveUp.signal },
    );
    call.catch(() => undefined);

    // The unknown outcome is settled by asking about the merchant_uid.
    let found = await t.api.get<Envelope<{ status: string; imp_uid: string }>>(`/payments/find/${mu}`);
    for (let i = 0; found.status === 404 && i < 600; i++) {
      await new Promise((r) => setTimeout(r, 50));
      found = await t.api.get<Envelope<{ status: string; imp_uid: string }>>(`/payments/find/${mu}`);
    }
    expect(found.status).toBe(200);
    expect(found.data.response.status).toBe("paid");
    // The charge took effect, and no answer came: the call ends by the client giving up (or, on a slow run, by
    // timeoutHoldMs resetting the socket first), never with an answer, which would resolve it.
    giveUp.abort();
    await expect(call).rejects.toMatchObject({ code: expect.stringMatching(/^(ERR_CANCELED|ECONNRESET)$/) });
    const dup = await charge(cu, mu);
    expect(dup.data.code).not.toBe(0);
    // It took effect fully: its webhook went out too.
    await hooks.waitUntil((h) => h.body.imp_uid === found.data.response.imp_uid);
  });

  it("timeout: after timeoutHoldMs the socket is destroyed if the client is still waiting", async () => {
    const short = await startTestEmulator({ timeoutHoldMs: 100 });
    try {
      await short.http.post("/__emulator/faults", { route: "POST /users/getToken", mode: "timeout" });
      // No client timeout: only the emulator's reset ends the call (a client timeout would pass without it).
      await expect(axios.post(`${short.emulator.url}/users/getToken`, { imp_key: API_KEY, imp_secret: API_SECRET })).rejects.toMatchObject({
        code: expect.stringMatching(/ECONNRESET|ERR_BAD_RESPONSE/),
      });
    } finally {
      await short.close();
    }
  });

  it("hold: the call takes effect at once and its answer waits until the control API releases it", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    await fault({ route: "POST /subscribe/payments/again", mode: "hold" });
    const mu = uid("order");
    const answer = charge(cu, mu);
    let held: Array<{ id: number; method: string; path: string }> = [];
    while (held.length === 0) held = (await t.http.get<{ held: typeof held }>("/__emulator/faults/held")).data.held;
    expect(held).toEqual([{ id: expect.any(Number), method: "POST", path: "/subscribe/payments/again" }]);
    // Charged already, while the caller still waits for the answer.
    expect((await t.api.get<Envelope<{ status: string }>>(`/payments/find/${mu}`)).data.response.status).toBe("paid");
    expect((await t.http.post("/__emulator/faults/release", { id: held[0].id })).data).toEqual({ released: 1 });
    const r = await answer;
    expect(r.status).toBe(200);
    expect(r.data.response.status).toBe("paid");
    expect((await t.http.get("/__emulator/faults/held")).data.held).toEqual([]);
    expect((await t.http.post("/__emulator/faults/release", {})).data).toEqual({ released: 0 });
  });

  it("health counts getToken calls and the tokens they issued", async () => {
    const before = (await t.http.get<{ token_requests: number; tokens_issued: number }>("/__emulator/health")).data;
    const first = await t.token();
    expect(await t.token()).toBe(first);
    await fault({ route: "*", mode: "expire_token" });
    expect((await t.http.get("/payments/imps_x", { headers: { Authorization: first } })).status).toBe(401);
    expect(await t.token()).not.toBe(first);
    const after = (await t.http.get<{ token_requests: number; tokens_issued: number }>("/__emulator/health")).data;
    expect(after.token_requests - before.token_requests).toBe(3);
    // The first call may reuse a token issued before this test; the one after the expiry is always new.
    expect(after.tokens_issued - before.tokens_issued).toBeGreaterThanOrEqual(1);
    expect(after.tokens_issued - before.tokens_issued).toBeLessThanOrEqual(2);
  });

  it("expire_token: the next authenticated call gets 401, the token is really expired and getToken issues a new one", async () => {
    const first = await t.token();
    await fault({ route: "*", mode: "expire_token" });
    // getToken is not authenticated: it does not consume the fault.
    expect(await t.token()).toBe(first);
    expect((await t.http.get<FaultList>("/__emulator/faults")).data.faults).toHaveLength(1);

    const r = await t.http.get<Envelope>("/payments/imps_x", { headers: { Authorization: `Bearer ${first}` } });
    expect(r.status).toBe(401);
    expect(r.data.response).toBeNull();
    expect((await t.http.get("/payments/imps_x", { headers: { Authorization: first } })).status).toBe(401);
    const second = await t.token();
    expect(second).not.toBe(first);
    expect((await t.http.get("/payments/imps_x", { headers: { Authorization: second } })).status).toBe(404);
  });

  it("expire_token: a charge answered 401 was not made, and the same merchant_uid charges normally with a new token", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const token = await t.token();
    await fault({ route: "POST /subscribe/payments/again", mode: "expire_token" });
    const mu = uid("order");
    const body = { customer_uid: cu, merchant_uid: mu, amount: 1000, name: "x" };
    expect((await t.http.post("/subscribe/payments/again", body, { headers: { Authorization: token } })).status).toBe(401);
    expect((await t.api.get(`/payments/find/${mu}`)).status).toBe(404);
    const paid = await charge(cu, mu);
    expect(paid.data.response.status).toBe("paid");
    // And a paid merchant_uid is never charged again.
    expect((await charge(cu, mu)).data.code).not.toBe(0);
  });

  it("drop_webhook: the next webhooks are not sent, whatever the route, and are reported as dropped", async () => {
    const cu = uid("cust");
    await issueKey(t, cu);
    const now = await clockNow(t);
    const mus = [uid("s"), uid("s"), uid("s")];
    await t.api.post("/subscribe/payments/schedule", {
      customer_uid: cu,
      schedules: mus.map((merchant_uid, i) => ({ merchant_uid, schedule_at: now + 10 + i, amount: 100, name: "x" })),
    });
    // The route is irrelevant for drop_webhook.
    await fault({ route: "POST /subscribe/payments/again", mode: "drop_webhook", times: 2 });
    const before = hooks.received.length;
    const res = await advance(t, 60);
    expect(res.executed).toHaveLength(3);
    expect(res.webhooks).toEqual({ delivered: 1, failed: 0, dropped: 2 });
    expect(hooks.received.length).toBe(before + 1);
    const log = (await t.http.get<{ webhooks: Array<{ outcome: string }> }>("/__emulator/webhooks")).data.webhooks;
    expect(log.filter((w) => w.outcome === "dropped")).toHaveLength(2);
  });

  it("rejects faults it cannot apply, with a clear error", async () => {
    const bad = async (body: Record<string, unknown>) => {
      const r = await fault(body);
      expect(r.status).toBe(400);
      expect(typeof r.data.error).toBe("string");
      return r.data.error ?? "";
    };
    expect(await bad({ route: "POST /no/such/route", mode: "http500" })).toContain("no Iamport route");
    expect(await bad({ route: "GET /subscribe/payments/again", mode: "http500" })).toContain("no Iamport route");
    expect(await bad({ route: "POST /__emulator/reset", mode: "http500" })).toContain("control API");
    expect(await bad({ route: "again", mode: "http500" })).toContain("METHOD /path");
    await bad({ route: "*", mode: "explode" });
    await bad({ route: "*", mode: "http500", times: -1 });
    await bad({ route: "*", mode: "http500", times: 1.5 });
  });

  it("times: 0 withdraws the pending faults of that route and mode only", async () => {
    await fault({ route: "GET /payments/{imp_uid}", mode: "http500", times: 5 });
    await fault({ route: "GET /payments/{imp_uid}", mode: "timeout", times: 1 });
    await fault({ route: "*", mode: "http500", times: 2 });
    const r = await t.http.post<FaultList & { cancelled: number }>("/__emulator/faults", { route: "GET /payments/{x}", mode: "http500", times: 0 });
    expect(r.status).toBe(200);
    expect(r.data.cancelled).toBe(1);
    expect(r.data.faults.map((f) => `${f.route} ${f.mode}`)).toEqual(["GET /payments/{imp_uid} timeout", "* http500"]);
  });

  it("DELETE /__emulator/faults and reset clear pending faults", async () => {
    await fault({ route: "*", mode: "http500", times: 5 });
    await t.http.delete("/__emulator/faults");
    expect((await t.http.post("/users/getToken", { imp_key: API_KEY, imp_secret: API_SECRET })).status).toBe(200);
    await fault({ route: "*", mode: "http500", times: 5 });
    await t.http.post("/__emulator/reset");
    expect((await t.http.post("/users/getToken", { imp_key: API_KEY, imp_secret: API_SECRET })).status).toBe(200);
  });
});
