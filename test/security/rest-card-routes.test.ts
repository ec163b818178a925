import { mintCustomerToken } from "../../src/security/customer-token";
import { API_KEY, GOOD_CARD, Harness, REGISTER_CARD, startHarness, TEST_CARDS, uid } from "../support/harness";

/**
 * The REST card routes (POST /subscriptions/issue-billing, its alias
 * /subscription/issue-billing, and POST /billings) act only for a caller who
 * may act for that customer: a merchant key, or a customer token for that
 * customer_uid (Authorization: Bearer, or the customer_token field of a plain
 * form). Otherwise 401 or 403, and nothing reaches Iamport or the database.
 * Replacing an active card takes replace=true and is recorded. These are the
 * REST rows of docs/security.md's "Who may call what" table.
 */
const SECRET = "rest-card-routes-secret-0123456789abcdefghij";
const OTHER_CARD = "5555-5555-5555-4444";
const FORM = "application/x-www-form-urlencoded";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { CUSTOMER_TOKEN_SECRET: SECRET, RATE_LIMIT_PUBLIC_PER_MINUTE: "0", RATE_LIMIT_PER_MINUTE: "0" } });
});
afterAll(async () => {
  await h?.close();
});

const token = (customerUid: string, secret = SECRET) => mintCustomerToken(secret, customerUid, 600);
const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });

/** A form post (or JSON with json: true) to a card route; never throws on status. */
async function post(path: string, fields: Record<string, unknown>, headers: Record<string, string> = {}, json = false) {
  const body = json ? fields : new URLSearchParams(fields as Record<string, string>).toString();
  return h.http.post(path, body, { headers: { "content-type": json ? "application/json" : FORM, ...headers } });
}

const cardFields = (customerUid: string, cardNumber = GOOD_CARD, extra: Record<string, string> = {}) => ({
  customer_uid: customerUid,
  card_number: cardNumber,
  expiry: "2031-12",
  birth: "880101",
  pwd_2digit: "12",
  ...extra,
});

/** What the emulator (Iamport) holds for the customer: HTTP status and its customer record. */
async function atIamport(customerUid: string): Promise<{ status: number; customer: Record<string, unknown> | null }> {
  const r = await h.emu.get(`/subscribe/customers/${encodeURIComponent(customerUid)}`, { headers: { Authorization: await h.iamportToken() } });
  return { status: r.status, customer: r.data?.response ?? null };
}

async function cardRow(customerUid: string) {
  const rows = await h.sql<{ status: string; card_number_masked: string; replacements: number; replaced_at: unknown; updated_at: unknown }>(
    `select status, card_number_masked, replacements, replaced_at, updated_at from cards where customer_uid = ?`,
    [customerUid],
  );
  expect(rows.length).toBeLessThanOrEqual(1);
  return rows[0] ?? null;
}

/** A customer with an active card registered by the merchant. */
async function customerWithCard(prefix: string, cardNumber = GOOD_CARD): Promise<string> {
  const customerUid = uid(prefix);
  await h.client.request(REGISTER_CARD, { input: { customerUid, cardNumber, expiry: "2031-12", birth: "880101", pwd2digit: "12" } });
  return customerUid;
}

async function chargeAgain(customerUid: string): Promise<{ status: string; paidAmount: number | null }> {
  const r = await h.client.request<{ chargeAgain: { status: string; paidAmount: number | null } }>(
    `mutation($c: String!) { chargeAgain(input: {customerUid: $c, amount: 1200, name: "after the attempt"}) { status paidAmount } }`,
    { c: customerUid },
  );
  return r.chargeAgain;
}

/** Every row of every application table as text, to search for values that must never be stored. */
async function allRowsText(): Promise<string[]> {
  const tables = await h.sql<{ schema: string; name: string }>(
    `select table_schema as schema, table_name as name from information_schema.tables
      where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema') and table_schema not like 'pg_toast%'`,
  );
  const out: string[] = [];
  for (const t of tables) for (const r of await h.sql<{ text: string }>(`select x::text as text from "${t.schema}"."${t.name}" x`)) out.push(r.text);
  return out;
}

const ISSUE_PATHS = ["/subscriptions/issue-billing", "/subscription/issue-billing"];

describe("POST /subscriptions/issue-billing (and /subscription/issue-billing)", () => {
  it.each(ISSUE_PATHS)("%s: an anonymous form post over customer B's card is 401; Iamport and the row keep B's card and B's next charge pays", async (path) => {
    const b = await customerWithCard("victim");
    const iamportBefore = await atIamport(b);
    const rowBefore = await cardRow(b);
    expect(iamportBefore.customer?.card_number).toMatch(/4242$/);

    for (const extra of [{}, { replace: "true" }] as Record<string, string>[]) {
      const r = await post(path, cardFields(b, TEST_CARDS.declined, extra));
      expect(r.status).toBe(401);
      expect(r.data).toEqual({ status: "failed", code: "UNAUTHENTICATED", message: expect.any(String) });
    }

    expect(await atIamport(b)).toEqual(iamportBefore);
    expect(await cardRow(b)).toEqual(rowBefore);
    expect(await chargeAgain(b)).toEqual({ status: "PAID", paidAmount: 1200 });
  });

  it("refuses a new customer's registration with 401 for every kind of missing or invalid credential: no key at Iamport, no row", async () => {
    const c = uid("anon");
    const expired = mintCustomerToken(SECRET, c, 60, Math.floor(Date.now() / 1000) - 3600);
    const forged = token(c, "another-secret-0123456789abcdefghijklmnop");
    const attempts: [Record<string, string>, Record<string, string>][] = [
      [{}, {}],
      [bearer("not-a-key"), {}],
      [{ authorization: API_KEY }, {}],
      [bearer(expired), {}],
      [bearer(forged), {}],
      [{}, { customer_token: expired }],
      [{}, { customer_token: forged }],
      [{}, { customer_token: "garbage" }],
      // The form field takes customer tokens only: a merchant key does not belong in a page.
      [{}, { customer_token: API_KEY }],
      // A header that is sent decides, even beside a valid form token.
      [bearer("not-a-key"), { customer_token: token(c) }],
    ];
    for (const [headers, extra] of attempts) {
      const r = await post("/subscriptions/issue-billing", cardFields(c, GOOD_CARD, extra), headers);
      expect({ headers, extra, status: r.status, code: r.data.code }).toEqual({ headers, extra, status: 401, code: "UNAUTHENTICATED" });
    }
    expect((await atIamport(c)).status).toBe(404);
    expect(await cardRow(c)).toBeNull();
  });

  it("refuses a customer token for another customer with 403 (header or form field): nothing sent to Iamport, nothing stored", async () => {
    const a = uid("a");
    const fresh = uid("c");
    const b = await customerWithCard("b");
    const iamportB = await atIamport(b);
    const rowB = await cardRow(b);
    for (const target of [fresh, b]) {
      for (const [headers, extra] of [
        [bearer(token(a)), {}],
        [{}, { customer_token: token(a) }],
        [bearer(token(a)), { replace: "true" }],
      ] as [Record<string, string>, Record<string, string>][]) {
        const r = await post("/subscriptions/issue-billing", cardFields(target, TEST_CARDS.declined, extra), headers);
        expect(r.status).toBe(403);
        expect(r.data).toEqual({ status: "failed", code: "FORBIDDEN", message: expect.any(String) });
      }
    }
    expect((await atIamport(fresh)).status).toBe(404);
    expect(await cardRow(fresh)).toBeNull();
    expect(await atIamport(b)).toEqual(iamportB);
    expect(await cardRow(b)).toEqual(rowB);
    expect(await chargeAgain(b)).toMatchObject({ status: "PAID" });
  });

  it("a customer token for that customer registers its card, in the Authorization header or the customer_token field; the token is neither stored nor logged", async () => {
    const viaHeader = uid("tokh");
    const viaField = uid("tokf");
    const headerToken = token(viaHeader);
    const fieldToken = token(viaField);
    const byHeader = await post("/subscriptions/issue-billing", cardFields(viaHeader), bearer(headerToken));
    expect(byHeader.status).toBe(200);
    expect(byHeader.data).toMatchObject({ status: "success", card: { customerUid: viaHeader, status: "ACTIVE", replacements: 0, replacedAt: null } });
    const byField = await post("/subscription/issue-billing", cardFields(viaField, OTHER_CARD, { customer_token: fieldToken }));
    expect(byField.status).toBe(200);
    expect(byField.data).toMatchObject({ status: "success", card: { customerUid: viaField, status: "ACTIVE" } });
    // A JSON body carries the field too.
    const viaJson = uid("tokj");
    const jsonToken = token(viaJson);
    const byJson = await post("/subscriptions/issue-billing", cardFields(viaJson, GOOD_CARD, { customer_token: jsonToken }), {}, true);
    expect(byJson.data).toMatchObject({ status: "success", card: { customerUid: viaJson } });

    for (const [c, masked] of [
      [viaHeader, /4242$/],
      [viaField, /4444$/],
      [viaJson, /4242$/],
    ] as const) {
      expect((await atIamport(c)).customer?.card_number).toMatch(masked);
      expect(await cardRow(c)).toMatchObject({ status: "ACTIVE", card_number_masked: expect.stringMatching(masked), replacements: 0, replaced_at: null });
    }
    const rows = await allRowsText();
    const logs = h.logs.join("\n");
    for (const t of [headerToken, fieldToken, jsonToken]) {
      const signature = t.split(".")[2];
      expect({ inTables: rows.some((r) => r.includes(signature)), inLogs: logs.includes(signature) }).toEqual({ inTables: false, inLogs: false });
    }
  });

  it("a merchant key registers any customer's card (form and JSON)", async () => {
    const byForm = uid("mform");
    const byJson = uid("mjson");
    expect((await post("/subscriptions/issue-billing", cardFields(byForm), bearer(API_KEY))).data).toMatchObject({ status: "success", card: { customerUid: byForm } });
    expect((await post("/subscription/issue-billing", cardFields(byJson, OTHER_CARD), bearer(API_KEY), true)).data).toMatchObject({ status: "success" });
    expect((await atIamport(byForm)).status).toBe(200);
    expect((await cardRow(byJson))?.card_number_masked).toMatch(/4444$/);
  });

  it("replacing an active card takes replace=true: without it 409 CONFLICT and Iamport keeps the card; with it the card is replaced and recorded", async () => {
    const b = await customerWithCard("repl");
    const iamportBefore = await atIamport(b);
    const rowBefore = await cardRow(b);
    const own = token(b);
    for (const [headers, extra] of [
      [bearer(API_KEY), {}],
      [{}, { customer_token: own }],
      [bearer(own), { replace: "false" }],
    ] as [Record<string, string>, Record<string, string>][]) {
      const r = await post("/subscriptions/issue-billing", cardFields(b, OTHER_CARD, extra), headers);
      expect(r.status).toBe(409);
      expect(r.data).toEqual({ status: "failed", code: "CONFLICT", message: expect.stringContaining("replace") });
    }
    const notAFlag = await post("/subscriptions/issue-billing", cardFields(b, OTHER_CARD, { replace: "yes" }), bearer(API_KEY));
    expect(notAFlag.status).toBe(400);
    expect(notAFlag.data).toMatchObject({ status: "failed", code: "BAD_USER_INPUT", field: "replace" });
    expect(await atIamport(b)).toEqual(iamportBefore);
    expect(await cardRow(b)).toEqual(rowBefore);

    const logged = h.logs.length;
    const replaced = await post("/subscriptions/issue-billing", cardFields(b, OTHER_CARD, { customer_token: own, replace: "true" }));
    expect(replaced.status).toBe(200);
    expect(replaced.data).toMatchObject({ status: "success", card: { customerUid: b, cardNumberMasked: expect.stringMatching(/4444$/), replacements: 1, replacedAt: expect.any(String) } });
    expect((await atIamport(b)).customer?.card_number).toMatch(/4444$/);
    const row = await cardRow(b);
    expect(row).toMatchObject({ status: "ACTIVE", card_number_masked: expect.stringMatching(/4444$/), replacements: 1, replaced_at: expect.anything() });

    // A merchant key replaces with JSON true as well; the count goes on.
    const again = await post("/subscriptions/issue-billing", { ...cardFields(b), replace: true }, bearer(API_KEY), true);
    expect(again.data).toMatchObject({ status: "success", card: { cardNumberMasked: expect.stringMatching(/4242$/), replacements: 2 } });

    const lines = h.logs.slice(logged).filter((l) => l.includes('"card replaced"'));
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0])).toMatchObject({ customerUid: b, previousCard: rowBefore!.card_number_masked, card: row!.card_number_masked, replacements: 1 });
    for (const l of lines) expect(l).not.toMatch(/4242424242424242|5555555555554444|4242-4242|5555-5555/);

    const { card } = await h.client.request<{ card: { replacements: number; replacedAt: string | null; cardNumberMasked: string } }>(
      `query($c: String!) { card(customerUid: $c) { replacements replacedAt cardNumberMasked } }`,
      { c: b },
    );
    expect(card).toMatchObject({ replacements: 2, replacedAt: expect.any(String), cardNumberMasked: expect.stringMatching(/4242$/) });
    expect(await chargeAgain(b)).toMatchObject({ status: "PAID" });
  });

  it("a deleted card or a new customer needs no flag, and that is no replacement", async () => {
    const b = await customerWithCard("del");
    await h.client.request(`mutation($c: String!) { deleteCard(customerUid: $c) { status } }`, { c: b });
    const r = await post("/subscriptions/issue-billing", cardFields(b, OTHER_CARD), bearer(token(b)));
    expect(r.data).toMatchObject({ status: "success", card: { status: "ACTIVE", replacements: 0, replacedAt: null } });
    expect(await cardRow(b)).toMatchObject({ status: "ACTIVE", replacements: 0, replaced_at: null });
    const fresh = uid("new");
    const withFlag = await post("/subscriptions/issue-billing", cardFields(fresh, GOOD_CARD, { replace: "true" }), bearer(API_KEY));
    expect(withFlag.data).toMatchObject({ status: "success", card: { replacements: 0, replacedAt: null } });
  });
});

describe("registerCard over an active card (GraphQL)", () => {
  it("is CONFLICT without replace (Iamport keeps the card) and a recorded replacement with replace: true", async () => {
    const b = await customerWithCard("gql");
    const before = await atIamport(b);
    const input = { customerUid: b, cardNumber: OTHER_CARD, expiry: "2031-12", birth: "880101" };
    for (const extra of [{}, { replace: false }, { replace: null }]) {
      const r = await h.gql(REGISTER_CARD, { input: { ...input, ...extra } });
      expect(r.errors?.map((e) => e.extensions?.code)).toEqual(["CONFLICT"]);
      expect(r.data).toBeNull();
    }
    const asCustomer = await h.gql(REGISTER_CARD, { input }, bearer(token(b)));
    expect(asCustomer.errors?.map((e) => e.extensions?.code)).toEqual(["CONFLICT"]);
    expect(await atIamport(b)).toEqual(before);

    const replaced = await h.gql<{ registerCard: { cardNumberMasked: string } }>(REGISTER_CARD, { input: { ...input, replace: true } }, bearer(token(b)));
    expect(replaced.errors).toBeUndefined();
    expect(replaced.data?.registerCard.cardNumberMasked).toMatch(/4444$/);
    expect(await cardRow(b)).toMatchObject({ card_number_masked: expect.stringMatching(/4444$/), replacements: 1 });
    expect((await atIamport(b)).customer?.card_number).toMatch(/4444$/);
  });
});

describe("POST /billings (a key issued in the browser)", () => {
  async function issuedInBrowser(customerUid: string): Promise<void> {
    const r = await h.emu.post(`/subscribe/customers/${customerUid}`, { card_number: OTHER_CARD, expiry: "2032-06", birth: "900101" }, { headers: { Authorization: await h.iamportToken() } });
    expect(r.data.code).toBe(0);
  }

  it("is 401 anonymous or with bad credentials and 403 with another customer's token: no row stored", async () => {
    const c = uid("bill");
    await issuedInBrowser(c);
    for (const [headers, fields] of [
      [{}, { customer_uid: c }],
      [bearer("nope"), { customer_uid: c }],
      [{}, { customer_uid: c, customer_token: "garbage" }],
    ] as [Record<string, string>, Record<string, string>][]) {
      const r = await post("/billings", fields, headers);
      expect(r.status).toBe(401);
      expect(r.data).toEqual({ status: "failed", code: "UNAUTHENTICATED", message: expect.any(String) });
    }
    for (const r of [await post("/billings", { customer_uid: c }, bearer(token(uid("other")))), await post("/billings", { customer_uid: c, customer_token: token(uid("other")) })]) {
      expect(r.status).toBe(403);
      expect(r.data).toMatchObject({ status: "failed", code: "FORBIDDEN" });
    }
    expect(await cardRow(c)).toBeNull();
  });

  it("stores the card for that customer's token (header or field) and for a merchant key", async () => {
    const [viaHeader, viaField, viaKey] = [uid("billh"), uid("billf"), uid("billk")];
    for (const c of [viaHeader, viaField, viaKey]) await issuedInBrowser(c);
    expect((await post("/billings", { customer_uid: viaHeader }, bearer(token(viaHeader)))).data).toMatchObject({ status: "success", card: { customerUid: viaHeader } });
    expect((await post("/billings", { customer_uid: viaField, customer_token: token(viaField) })).data).toMatchObject({ status: "success" });
    expect((await post("/billings", { customer_uid: viaKey }, bearer(API_KEY), true)).data).toMatchObject({ status: "success" });
    for (const c of [viaHeader, viaField, viaKey]) expect(await cardRow(c)).toMatchObject({ status: "ACTIVE", card_number_masked: expect.stringMatching(/4444$/) });
  });
});

describe("two registrations of one customer at once", () => {
  // Every Iamport call takes 400 ms, so both requests are in the server together: the second one
  // finds the first one's claim on the customer's card and is refused (retryable), instead of also
  // finding "no active card"; no database lock is held while Iamport answers.
  let slow: Harness;
  beforeAll(async () => {
    slow = await startHarness({ env: { RATE_LIMIT_PUBLIC_PER_MINUTE: "0" }, emulator: { latencyMs: 400 } });
  });
  afterAll(async () => {
    await slow?.close();
  });

  it("without replace: one succeeds, the other is CONFLICT, and Iamport holds the card the row shows", async () => {
    const c = uid("race");
    const send = (cardNumber: string) =>
      slow.http.post("/subscriptions/issue-billing", new URLSearchParams(cardFields(c, cardNumber)).toString(), { headers: { "content-type": FORM, ...bearer(API_KEY) } });
    const answers = await Promise.all([send(GOOD_CARD), send(OTHER_CARD)]);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
    const winner = answers.find((r) => r.status === 200)!.data.card.cardNumberMasked as string;
    const token = (await slow.emu.post("/users/getToken", { imp_key: slow.config.emulator.apiKey, imp_secret: slow.config.emulator.apiSecret })).data.response.access_token;
    const atIamportNow = await slow.emu.get(`/subscribe/customers/${c}`, { headers: { Authorization: token } });
    expect(atIamportNow.data.response.card_number).toBe(winner);
    const rows = await slow.sql<{ card_number_masked: string; replacements: number }>(`select card_number_masked, replacements from cards where customer_uid = ?`, [c]);
    expect(rows).toEqual([{ card_number_masked: winner, replacements: 0 }]);
  });

  it("with replace on both: one runs, the other is a retryable CONFLICT, and its retry replaces again", async () => {
    const c = uid("race2");
    const send = (cardNumber: string) =>
      slow.http.post("/subscriptions/issue-billing", new URLSearchParams(cardFields(c, cardNumber, { replace: "true" })).toString(), {
        headers: { "content-type": FORM, ...bearer(API_KEY) },
      });
    const token = (await slow.emu.post("/users/getToken", { imp_key: slow.config.emulator.apiKey, imp_secret: slow.config.emulator.apiSecret })).data.response.access_token;
    const held = async () => (await slow.emu.get(`/subscribe/customers/${c}`, { headers: { Authorization: token } })).data.response.card_number;
    const row = () => slow.sql<{ card_number_masked: string; replacements: number }>(`select card_number_masked, replacements from cards where customer_uid = ?`, [c]);
    expect((await send(GOOD_CARD)).status).toBe(200);
    const answers = await Promise.all([send(OTHER_CARD), send(GOOD_CARD)]);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(answers.find((r) => r.status === 409)!.data).toMatchObject({ code: "CONFLICT", message: expect.stringContaining("in progress") });
    expect(await row()).toEqual([{ card_number_masked: await held(), replacements: 1 }]);
    // The claim is released with the first one's answer: the refused one, sent again, replaces.
    const retried = answers[0].status === 409 ? OTHER_CARD : GOOD_CARD;
    expect((await send(retried)).status).toBe(200);
    expect(await row()).toEqual([{ card_number_masked: await held(), replacements: 2 }]);
  });
});
