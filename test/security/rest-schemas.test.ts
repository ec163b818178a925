import { API_KEY, GOOD_CARD, Harness, startHarness, uid } from "../support/harness";

/**
 * The REST routes' JSON schemas (src/http/routes.ts): a body or query of the
 * wrong shape is a 400 BAD_USER_INPUT naming the field, in the error format of
 * every other route, without the value (it may be card data); values are not
 * converted (a number is not an imp_uid); and the card routes' credentials are
 * checked before the body's shape, so a caller without them learns nothing.
 */
const FORM = "application/x-www-form-urlencoded";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { RATE_LIMIT_PUBLIC_PER_MINUTE: "0", RATE_LIMIT_PER_MINUTE: "0" } });
});
afterAll(async () => {
  await h?.close();
});

const eventCount = async () => Number((await h.sql<{ n: string }>("select count(*) as n from webhook_events"))[0].n);

describe("the webhooks' schema", () => {
  it.each([
    ["/iamport-webhook", { merchant_uid: "m_1", status: "paid" }, "imp_uid", "imp_uid is required"],
    ["/iamport-webhook", { imp_uid: 123456, status: "paid" }, "imp_uid", "imp_uid must be a string"],
    ["/iamport-callback/schedule", { imp_uid: "imp_1", merchant_uid: 5 }, "merchant_uid", "merchant_uid must be a string"],
    ["/iamport-callback/schedule", { imp_uid: "imp_1", status: ["paid"] }, "status", "status must be a string"],
    ["/iamport-webhook", [{ imp_uid: "imp_1" }], "body", "body must be an object"],
    ["/portone-webhook", { data: { paymentId: "p_1" } }, "type", "type is required"],
    ["/portone-webhook", { type: 5, data: {} }, "type", "type must be a string"],
    ["/portone-webhook", { type: "Transaction.Paid", data: "p_1" }, "data", "data must be a object"],
  ])("%s %j: 400 naming %s, nothing recorded", async (path, body, field, message) => {
    const before = await eventCount();
    const r = await h.http.post(path, body);
    expect(r.status).toBe(400);
    expect(r.data).toEqual({ status: "failed", code: "BAD_USER_INPUT", field, message });
    expect(await eventCount()).toBe(before);
  });

  it("refuses a form's repeated imp_uid as not a string", async () => {
    const r = await h.http.post("/iamport-webhook", "imp_uid=imp_1&imp_uid=imp_2", { headers: { "content-type": FORM } });
    expect(r.status).toBe(400);
    expect(r.data).toMatchObject({ code: "BAD_USER_INPUT", field: "imp_uid" });
  });
});

describe("the card form's schema", () => {
  const post = (body: Record<string, unknown>, authorization?: string) =>
    h.http.post("/subscriptions/issue-billing", body, { headers: authorization ? { authorization } : {} });

  it("names a missing or mistyped field without echoing any value", async () => {
    const customer_uid = uid("schema");
    for (const [body, field] of [
      [{ customer_uid, expiry: "2031-12", birth: "880101" }, "card_number"],
      [{ customer_uid, card_number: "", expiry: "2031-12", birth: "880101" }, "card_number"],
      [{ customer_uid, card_number: 4242424242424242, expiry: "2031-12", birth: "880101" }, "card_number"],
      [{ customer_uid, card_number: GOOD_CARD, expiry: "2031-12", birth: 880101 }, "birth"],
      [{ customer_uid, card_number: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd_2digit: 12 }, "pwd_2digit"],
    ] as [Record<string, unknown>, string][]) {
      const r = await post(body, `Bearer ${API_KEY}`);
      expect({ field, status: r.status, code: r.data.code, answered: r.data.field }).toEqual({ field, status: 400, code: "BAD_USER_INPUT", answered: field });
      expect(JSON.stringify(r.data)).not.toMatch(/4242|880101/);
    }
    const cards = await h.sql("select 1 from cards where customer_uid = ?", [customer_uid]);
    expect(cards).toEqual([]);
  });

  it("checks the credentials first: 401 for a caller without them, whatever the body", async () => {
    const r = await post({ customer_uid: uid("schema"), card_number: 42 });
    expect(r.status).toBe(401);
    expect(r.data.code).toBe("UNAUTHENTICATED");
  });
});
