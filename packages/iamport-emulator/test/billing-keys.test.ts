import { TEST_CARDS } from "../src";
import { CARD, startTestEmulator, uid, type Envelope, type TestEmulator } from "./helpers";

type Customer = Record<string, unknown> & { customer_uid: string; card_number: string; inserted: number; updated: number };

describe("emulator: billing keys (/subscribe/customers)", () => {
  let t: TestEmulator;
  beforeAll(async () => {
    t = await startTestEmulator();
  });
  afterAll(() => t.close());

  const issue = (customerUid: string, body: Record<string, unknown>) =>
    t.api.post<Envelope<Customer>>(`/subscribe/customers/${encodeURIComponent(customerUid)}`, body);

  it("issues a billing key and returns the customer with every required field and a masked card number", async () => {
    const cu = uid("cust");
    const r = await issue(cu, {
      ...CARD,
      customer_name: "홍길동",
      customer_email: "hong@example.com",
      customer_tel: "010-1234-5678",
      customer_addr: "서울",
      customer_postcode: "04524",
      customer_id: "user-1",
    });
    expect(r.status).toBe(200);
    expect(r.data.code).toBe(0);
    expect(r.data.message).toBeNull();
    const c = r.data.response;
    for (const field of ["customer_uid", "pg_provider", "pg_id", "card_name", "inserted", "updated", "sandbox"]) {
      expect(c).toHaveProperty(field);
    }
    expect(c).toMatchObject({
      customer_uid: cu,
      pg_provider: "nice",
      customer_name: "홍길동",
      customer_email: "hong@example.com",
      customer_id: "user-1",
      card_type: 0,
    });
    expect(c.card_number).toBe("424242******4242");
    expect(JSON.stringify(r.data)).not.toContain("4242424242424242");
    expect(JSON.stringify(r.data)).not.toContain("900101"); // birth never echoed
    expect(Number.isInteger(c.inserted)).toBe(true);
    expect(typeof c.card_code).toBe("string");

    const got = await t.api.get<Envelope<Customer>>(`/subscribe/customers/${cu}`);
    expect(got.status).toBe(200);
    expect(got.data.response).toEqual(c);
  });

  it("takes the PG from `pg` (provider or provider.mid)", async () => {
    const a = await issue(uid("cust"), { ...CARD, pg: "kcp" });
    expect(a.data.response).toMatchObject({ pg_provider: "kcp" });
    const b = await issue(uid("cust"), { ...CARD, pg: "nice.mid_777" });
    expect(b.data.response).toMatchObject({ pg_provider: "nice", pg_id: "mid_777" });
  });

  it("accepts a form body and card numbers without dashes", async () => {
    const cu = uid("cust");
    const r = await t.api.post<Envelope<Customer>>(
      `/subscribe/customers/${cu}`,
      new URLSearchParams({ card_number: "5555555555554444", expiry: "2099-01", birth: "1234567890" }).toString(),
      { headers: { "Content-Type": "application/x-www-form-urlencoded" } },
    );
    expect(r.data.code).toBe(0);
    expect(r.data.response.card_number).toBe("555555******4444");
  });

  it("replaces the card behind a re-used customer_uid, keeping `inserted`", async () => {
    const cu = uid("cust");
    const first = (await issue(cu, CARD)).data.response;
    const second = (await issue(cu, { ...CARD, card_number: TEST_CARDS.VALID_MASTERCARD })).data.response;
    expect(second.card_number).toBe("555555******4444");
    expect(second.inserted).toBe(first.inserted);
    expect(second.updated).toBeGreaterThanOrEqual(first.updated);
    expect((await t.api.get<Envelope<Customer>>(`/subscribe/customers/${cu}`)).data.response.card_number).toBe("555555******4444");
  });

  it("refuses the billing-key test card with a non-zero code and stores nothing", async () => {
    const cu = uid("cust");
    const r = await issue(cu, { ...CARD, card_number: TEST_CARDS.BILLING_KEY_REFUSED });
    expect(r.status).toBe(200);
    expect(r.data.code).not.toBe(0);
    expect(r.data.response).toBeNull();
    expect(r.data.message).toContain("카드정보 인증 및 빌키 발급에 실패하였습니다.");
    expect((await t.api.get(`/subscribe/customers/${cu}`)).status).toBe(404);
  });

  it("issues keys for the declining test cards (they fail only when charged)", async () => {
    for (const card_number of [TEST_CARDS.DECLINED_LIMIT, TEST_CARDS.DECLINED_INSUFFICIENT_BALANCE, TEST_CARDS.DECLINES_AFTER_FIRST_CHARGE]) {
      const r = await issue(uid("cust"), { ...CARD, card_number });
      expect(r.data.code).toBe(0);
      // And without dashes too.
      const r2 = await issue(uid("cust"), { ...CARD, card_number: card_number.replace(/-/g, "") });
      expect(r2.data.code).toBe(0);
    }
  });

  it.each([
    ["a number failing Luhn", { card_number: "4242-4242-4242-4241" }],
    ["a non-numeric number", { card_number: "abcd-efgh" }],
    ["an expired card", { expiry: "2020-01" }],
    ["a malformed expiry", { expiry: "12/29" }],
    ["month 13", { expiry: "2099-13" }],
    ["a malformed birth", { birth: "99" }],
    ["an impossible birth date", { birth: "901301" }],
    ["a malformed pwd_2digit", { pwd_2digit: "1" }],
  ])("refuses %s like a bad card (non-zero code, HTTP 200)", async (_label, override) => {
    const r = await issue(uid("cust"), { ...CARD, ...override });
    expect(r.status).toBe(200);
    expect(r.data.code).not.toBe(0);
    expect(r.data.response).toBeNull();
    expect(r.data.message).toContain("카드정보 인증 및 빌키 발급에 실패하였습니다.");
  });

  it("answers 400 when required card fields are missing", async () => {
    const r = await issue(uid("cust"), { expiry: "2099-12" });
    expect(r.status).toBe(400);
    expect(r.data.message).toContain("card_number");
    const r2 = await issue(uid("cust"), { card_number: CARD.card_number });
    expect(r2.status).toBe(400);
    expect(r2.data.message).toContain("expiry");
  });

  it("deletes a key (returning it) and answers 404 envelopes for unknown customers", async () => {
    const cu = uid("cust");
    const issued = (await issue(cu, CARD)).data.response;
    const del = await t.api.delete<Envelope<Customer>>(`/subscribe/customers/${cu}`);
    expect(del.status).toBe(200);
    expect(del.data.response).toEqual(issued);
    const get = await t.api.get<Envelope>(`/subscribe/customers/${cu}`);
    expect(get.status).toBe(404);
    expect(get.data.code).not.toBe(0);
    expect(get.data.response).toBeNull();
    expect(get.data.message).toBe("등록된 고객정보가 없습니다.");
    expect((await t.api.delete<Envelope>(`/subscribe/customers/${cu}`)).status).toBe(404);
  });

  it("handles customer_uids that need URL encoding", async () => {
    const cu = `${uid("cust")}/with space`;
    expect((await issue(cu, CARD)).data.code).toBe(0);
    const got = await t.api.get<Envelope<Customer>>(`/subscribe/customers/${encodeURIComponent(cu)}`);
    expect(got.data.response.customer_uid).toBe(cu);
  });
});
