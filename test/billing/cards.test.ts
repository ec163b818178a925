import { API_KEY, GOOD_CARD, Harness, REGISTER_CARD, startHarness, TEST_CARDS, uid } from "../support/harness";

/**
 * Billing keys over real HTTP: registerCard / card / deleteCard on /graphql,
 * POST /billings and POST /subscriptions/issue-billing, against the emulator.
 */

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const CARD = `query Card($customerUid: String!) { card(customerUid: $customerUid) { customerUid cardName cardNumberMasked cardType pgProvider status createdAt updatedAt } }`;
const DELETE = `mutation Delete($customerUid: String!) { deleteCard(customerUid: $customerUid) { customerUid status cardNumberMasked } }`;

type CardOut = { customerUid: string; cardName: string | null; cardNumberMasked: string | null; cardType: string | null; pgProvider: string | null; status: string; createdAt: string; updatedAt: string };

function input(customerUid: string, patch: Record<string, unknown> = {}) {
  return { customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12", ...patch };
}

async function atIamport(customerUid: string) {
  const token = await h.iamportToken();
  return h.emu.get(`/subscribe/customers/${encodeURIComponent(customerUid)}`, { headers: { Authorization: token } });
}

async function cardRows(customerUid: string) {
  return h.sql<{ status: string; card_number_masked: string | null; deleted_at: unknown; created_at: Date }>(
    `select status, card_number_masked, deleted_at, created_at from cards where customer_uid = ?`,
    [customerUid],
  );
}

describe("authentication on /graphql", () => {
  it.each([
    ["no Authorization header", {}],
    ["a wrong key", { authorization: "Bearer not-the-key" }],
    ["a malformed header", { authorization: API_KEY }],
  ])("answers 401 UNAUTHENTICATED with %s and runs nothing", async (_what, headers) => {
    const customerUid = uid("anon");
    const r = await h.http.post("/graphql", { query: REGISTER_CARD, variables: { input: input(customerUid) } }, { headers });
    expect(r.status).toBe(401);
    expect(r.data.errors[0].extensions.code).toBe("UNAUTHENTICATED");
    expect(r.data.data).toBeUndefined();
    expect(await cardRows(customerUid)).toHaveLength(0);
    expect((await atIamport(customerUid)).status).toBe(404);
  });
});

describe("registerCard", () => {
  it("issues a billing key at Iamport and stores only what Iamport returned", async () => {
    const customerUid = uid("c");
    const { registerCard } = await h.client.request<{ registerCard: CardOut }>(REGISTER_CARD, { input: input(customerUid) });
    expect(registerCard).toMatchObject({ customerUid, status: "ACTIVE", cardType: expect.stringMatching(/^(CREDIT|CHECK)$/) });
    expect(registerCard.cardName).toEqual(expect.any(String));
    expect(registerCard.cardNumberMasked).toMatch(/\*/);
    expect(registerCard.cardNumberMasked).not.toContain("4242424242424242");

    const iamport = await atIamport(customerUid);
    expect(iamport.status).toBe(200);
    expect(iamport.data.response).toMatchObject({ customer_uid: customerUid, card_name: registerCard.cardName });

    const rows = await cardRows(customerUid);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "ACTIVE", card_number_masked: registerCard.cardNumberMasked, deleted_at: null });
  });

  it("accepts the number without dashes", async () => {
    const customerUid = uid("c");
    const { registerCard } = await h.client.request<{ registerCard: CardOut }>(REGISTER_CARD, {
      input: input(customerUid, { cardNumber: "5555555555554444", pwd2digit: null }),
    });
    expect(registerCard.status).toBe("ACTIVE");
    expect(registerCard.cardNumberMasked).toMatch(/4444$/);
  });

  it("answers CARD_REJECTED when Iamport refuses the billing key, and stores nothing", async () => {
    const customerUid = uid("c");
    const r = await h.gql(REGISTER_CARD, { input: input(customerUid, { cardNumber: TEST_CARDS.refused }) });
    expect(r.status).toBe(200);
    expect(r.data).toBeNull();
    expect(r.errors?.[0].extensions?.code).toBe("CARD_REJECTED");
    expect(r.errors?.[0].message).not.toMatch(/4000.?0000.?0000.?0119/);
    expect(await cardRows(customerUid)).toHaveLength(0);
    expect((await atIamport(customerUid)).status).toBe(404);
  });

  it.each([
    ["a Luhn failure", { cardNumber: "4242-4242-4242-4241" }, "cardNumber"],
    ["too few digits", { cardNumber: "4242-4242" }, "cardNumber"],
    ["letters in the number", { cardNumber: "4242-4242-4242-424x" }, "cardNumber"],
    ["an expiry in another format", { expiry: "12/31" }, "expiry"],
    ["an expiry month 13", { expiry: "2031-13" }, "expiry"],
    ["an expiry month 00", { expiry: "2031-00" }, "expiry"],
    ["an expiry in the past", { expiry: "2020-01" }, "expiry"],
    ["last month's expiry", { expiry: lastMonth() }, "expiry"],
    ["a 5-digit birth", { birth: "88010" }, "birth"],
    ["a birth with letters", { birth: "88o101" }, "birth"],
    ["a 3-digit pwd2digit", { pwd2digit: "123" }, "pwd2digit"],
    ["a 1-digit pwd2digit", { pwd2digit: "1" }, "pwd2digit"],
    ["a pwd2digit with letters", { pwd2digit: "ab" }, "pwd2digit"],
    ["an empty customerUid", { customerUid: "  " }, "customerUid"],
    ["a customerUid with a slash", { customerUid: "a/b" }, "customerUid"],
  ])("answers BAD_USER_INPUT for %s, naming the field, without calling Iamport", async (_what, patch, field) => {
    const customerUid = uid("bad");
    const r = await h.gql(REGISTER_CARD, { input: input(customerUid, patch) });
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
    // The message never repeats the card data back.
    expect(r.errors?.[0].message).not.toContain("4242");
    expect(await cardRows(customerUid)).toHaveLength(0);
    expect((await atIamport(customerUid)).status).toBe(404);
  });

  it("accepts this month's expiry (the card is valid through its last day)", async () => {
    const now = new Date();
    const expiry = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, "0")}`;
    const { registerCard } = await h.client.request<{ registerCard: CardOut }>(REGISTER_CARD, { input: input(uid("c"), { expiry }) });
    expect(registerCard.status).toBe("ACTIVE");
  });

  it("re-registering a customerUid with replace: true replaces the card: one row, the new card, createdAt kept", async () => {
    const customerUid = uid("c");
    const first = (await h.client.request<{ registerCard: CardOut }>(REGISTER_CARD, { input: input(customerUid) })).registerCard;
    const second = (
      await h.client.request<{ registerCard: CardOut }>(REGISTER_CARD, { input: input(customerUid, { cardNumber: "5555-5555-5555-4444", replace: true }) })
    ).registerCard;
    expect(first.cardNumberMasked).toMatch(/4242$/);
    expect(second.cardNumberMasked).toMatch(/4444$/);
    expect(second.createdAt).toBe(first.createdAt);
    expect(new Date(second.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(first.updatedAt).getTime());

    const rows = await cardRows(customerUid);
    expect(rows).toHaveLength(1);
    expect(rows[0].card_number_masked).toBe(second.cardNumberMasked);
    const { card } = await h.client.request<{ card: CardOut }>(CARD, { customerUid });
    expect(card.cardNumberMasked).toBe(second.cardNumberMasked);
    expect((await atIamport(customerUid)).data.response.card_number).toMatch(/4444$/);
  });

  it("answers UPSTREAM_UNAVAILABLE when Iamport fails, and stores nothing", async () => {
    const customerUid = uid("c");
    await h.emu.post("/__emulator/faults", { route: "POST /subscribe/customers/{customer_uid}", mode: "http500", times: 1 });
    const r = await h.gql(REGISTER_CARD, { input: input(customerUid) });
    expect(r.errors?.[0].extensions?.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(await cardRows(customerUid)).toHaveLength(0);
  });
});

describe("card query", () => {
  it("returns the card, or null for an unknown customer", async () => {
    const customerUid = uid("c");
    await h.client.request(REGISTER_CARD, { input: input(customerUid) });
    const { card } = await h.client.request<{ card: CardOut }>(CARD, { customerUid });
    expect(card).toMatchObject({ customerUid, status: "ACTIVE" });
    const none = await h.gql(CARD, { customerUid: uid("nobody") });
    expect(none.errors).toBeUndefined();
    expect(none.data).toEqual({ card: null });
    // A value no customerUid can have is the caller's mistake, not a database error.
    const nul = await h.gql(CARD, { customerUid: "a\u0000b" });
    expect(nul.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "customerUid" });
  });
});

describe("deleteCard", () => {
  it("deletes the billing key at Iamport and marks the card DELETED; a second delete is NOT_FOUND", async () => {
    const customerUid = uid("c");
    await h.client.request(REGISTER_CARD, { input: input(customerUid) });
    const { deleteCard } = await h.client.request<{ deleteCard: CardOut }>(DELETE, { customerUid });
    expect(deleteCard).toMatchObject({ customerUid, status: "DELETED" });
    expect((await atIamport(customerUid)).status).toBe(404);
    const rows = await cardRows(customerUid);
    expect(rows).toHaveLength(1);
    expect(rows[0].status).toBe("DELETED");
    expect(rows[0].deleted_at).not.toBeNull();
    const { card } = await h.client.request<{ card: CardOut }>(CARD, { customerUid });
    expect(card.status).toBe("DELETED");

    const again = await h.gql(DELETE, { customerUid });
    expect(again.errors?.[0].extensions?.code).toBe("NOT_FOUND");

    // A deleted card cannot be charged.
    const charge = await h.gql(`mutation { chargeAgain(input: {customerUid: "${customerUid}", amount: 1000, name: "x"}) { status } }`);
    expect(charge.errors?.[0].extensions?.code).toBe("NOT_FOUND");
  });

  it("answers NOT_FOUND for a customer that never had a card, and BAD_USER_INPUT for a bad customerUid", async () => {
    const r = await h.gql(DELETE, { customerUid: uid("nobody") });
    expect(r.errors?.[0].extensions?.code).toBe("NOT_FOUND");
    const bad = await h.gql(DELETE, { customerUid: "" });
    expect(bad.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "customerUid" });
  });

  it("registering again after a delete makes the card ACTIVE again", async () => {
    const customerUid = uid("c");
    await h.client.request(REGISTER_CARD, { input: input(customerUid) });
    await h.client.request(DELETE, { customerUid });
    const { registerCard } = await h.client.request<{ registerCard: CardOut }>(REGISTER_CARD, { input: input(customerUid) });
    expect(registerCard.status).toBe("ACTIVE");
    const rows = await cardRows(customerUid);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: "ACTIVE", deleted_at: null });
  });

  it("answers UPSTREAM_UNAVAILABLE and keeps the card ACTIVE when Iamport fails the delete", async () => {
    const customerUid = uid("c");
    await h.client.request(REGISTER_CARD, { input: input(customerUid) });
    await h.emu.post("/__emulator/faults", { route: "DELETE /subscribe/customers/{customer_uid}", mode: "http500", times: 1 });
    const r = await h.gql(DELETE, { customerUid });
    expect(r.errors?.[0].extensions?.code).toBe("UPSTREAM_UNAVAILABLE");
    expect((await cardRows(customerUid))[0].status).toBe("ACTIVE");
    expect((await atIamport(customerUid)).status).toBe(200);
  });

  it("still marks the card DELETED when Iamport already forgot the key", async () => {
    const customerUid = uid("c");
    await h.client.request(REGISTER_CARD, { input: input(customerUid) });
    const token = await h.iamportToken();
    expect((await h.emu.delete(`/subscribe/customers/${customerUid}`, { headers: { Authorization: token } })).status).toBe(200);
    const { deleteCard } = await h.client.request<{ deleteCard: CardOut }>(DELETE, { customerUid });
    expect(deleteCard.status).toBe("DELETED");
  });
});

// The REST card routes with the merchant key (who else may call them: test/security/rest-card-routes.test.ts).
const MERCHANT = { authorization: `Bearer ${API_KEY}` };

describe("POST /billings (a billing key issued in the browser)", () => {
  it("confirms the key with Iamport and stores the card", async () => {
    const customerUid = uid("web");
    const token = await h.iamportToken();
    const issued = await h.emu.post(
      `/subscribe/customers/${customerUid}`,
      { card_number: "5555-5555-5555-4444", expiry: "2032-06", birth: "900101" },
      { headers: { Authorization: token } },
    );
    expect(issued.data.code).toBe(0);
    const r = await h.http.post("/billings", { customer_uid: customerUid }, { headers: MERCHANT });
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "success", card: { customerUid, status: "ACTIVE", cardNumberMasked: issued.data.response.card_number } });
    expect((await cardRows(customerUid))[0]).toMatchObject({ status: "ACTIVE" });
    const { card } = await h.client.request<{ card: CardOut }>(CARD, { customerUid });
    expect(card.cardName).toBe(issued.data.response.card_name);
  });

  it("accepts a form body", async () => {
    const customerUid = uid("webform");
    const token = await h.iamportToken();
    await h.emu.post(`/subscribe/customers/${customerUid}`, { card_number: GOOD_CARD, expiry: "2032-06" }, { headers: { Authorization: token } });
    const r = await h.http.post("/billings", new URLSearchParams({ customer_uid: customerUid }).toString(), {
      headers: { "content-type": "application/x-www-form-urlencoded", ...MERCHANT },
    });
    expect(r.status).toBe(200);
    expect(r.data.card.customerUid).toBe(customerUid);
  });

  it("answers 404 for a customer_uid Iamport does not know, and stores nothing", async () => {
    const customerUid = uid("ghost");
    const r = await h.http.post("/billings", { customer_uid: customerUid }, { headers: MERCHANT });
    expect(r.status).toBe(404);
    expect(r.data).toMatchObject({ status: "failed", code: "NOT_FOUND" });
    expect(await cardRows(customerUid)).toHaveLength(0);
  });

  it.each([
    ["no customer_uid", {}],
    ["a number", { customer_uid: 12 }],
    ["a bad customer_uid", { customer_uid: "a b" }],
  ])("answers 400 for %s", async (_what, body) => {
    const r = await h.http.post("/billings", body, { headers: MERCHANT });
    expect(r.status).toBe(400);
    expect(r.data).toMatchObject({ status: "failed", code: "BAD_USER_INPUT", field: "customer_uid" });
  });
});

describe("POST /subscriptions/issue-billing", () => {
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const FORM = { headers: { "content-type": "application/x-www-form-urlencoded", ...MERCHANT } };
  const JSON_BODY = { headers: MERCHANT };

  it.each(["/subscriptions/issue-billing", "/subscription/issue-billing"])("%s issues a billing key from a form body", async (path) => {
    const customerUid = uid("form");
    const r = await h.http.post(path, form({ customer_uid: customerUid, card_number: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd_2digit: "12" }), FORM);
    expect(r.status).toBe(200);
    expect(r.data).toMatchObject({ status: "success", message: expect.any(String), card: { customerUid, status: "ACTIVE" } });
    expect(JSON.stringify(r.data)).not.toContain("4242-4242-4242-4242");
    expect((await atIamport(customerUid)).status).toBe(200);
    expect(await cardRows(customerUid)).toHaveLength(1);
  });

  it("issues a billing key from a JSON body (pwd_2digit optional)", async () => {
    const customerUid = uid("json");
    const r = await h.http.post("/subscriptions/issue-billing", { customer_uid: customerUid, card_number: "5555555555554444", expiry: "2031-12", birth: "880101" }, JSON_BODY);
    expect(r.status).toBe(200);
    expect(r.data.status).toBe("success");
    expect((await cardRows(customerUid))[0].card_number_masked).toMatch(/4444$/);
  });

  it("answers 200 {status: failed, message} for a refused card and stores nothing", async () => {
    const customerUid = uid("refused");
    const r = await h.http.post("/subscription/issue-billing", form({ customer_uid: customerUid, card_number: TEST_CARDS.refused, expiry: "2031-12", birth: "880101" }), FORM);
    expect(r.status).toBe(200);
    expect(r.data).toEqual({ status: "failed", message: expect.any(String) });
    expect(r.data.message.length).toBeGreaterThan(0);
    expect(await cardRows(customerUid)).toHaveLength(0);
  });

  it.each([
    ["no customer_uid", { customer_uid: undefined }, "customer_uid"],
    ["no card_number", { card_number: undefined }, "card_number"],
    ["a Luhn failure", { card_number: "4242424242424241" }, "card_number"],
    ["no expiry", { expiry: undefined }, "expiry"],
    ["a past expiry", { expiry: "2019-05" }, "expiry"],
    ["a bad birth", { birth: "1988-01-01" }, "birth"],
    ["a bad pwd_2digit", { pwd_2digit: "4" }, "pwd_2digit"],
    ["a number where a string belongs (JSON)", { birth: 880101 }, "birth"],
  ])("answers 400 naming the field for %s", async (_what, patch, field) => {
    const customerUid = uid("bad");
    const body: Record<string, unknown> = { customer_uid: customerUid, card_number: GOOD_CARD, expiry: "2031-12", birth: "880101", ...patch };
    const r = await h.http.post("/subscriptions/issue-billing", body, JSON_BODY);
    expect(r.status).toBe(400);
    expect(r.data).toMatchObject({ status: "failed", code: "BAD_USER_INPUT", field });
    expect(JSON.stringify(r.data)).not.toContain("4242");
    expect(await cardRows(customerUid)).toHaveLength(0);
  });

  it("answers 400 for a body that is not JSON", async () => {
    const r = await h.http.post("/subscriptions/issue-billing", "{not json", { headers: { "content-type": "application/json" } });
    expect(r.status).toBe(400);
    expect(r.data).toMatchObject({ status: "failed", code: "BAD_USER_INPUT" });
  });
});

function lastMonth(): string {
  const now = new Date();
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}
