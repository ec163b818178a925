import { Enum, Iamport, Request } from "iamport-rest-client-nodejs";
import { advance, clockNow, startTestEmulator, uid, WebhookReceiver, API_KEY, API_SECRET, type TestEmulator } from "./helpers";

/*
 * The public npm client `iamport-rest-client-nodejs`, unchanged, against the
 * emulator. It takes a `baseUrl` in its constructor, so no patching is needed.
 *
 * Two quirks of that library shape this test:
 *  - it decides whether its cached token is still valid with the machine's
 *    real clock, not with Iamport's `now`, and it does not retry on 401; so the
 *    clock is only advanced by minutes here (a token lives 30).
 *  - its TypeScript typings mark optional fields (e.g. cancel's refund_*) as
 *    required, so partial payloads are cast; at run time it sends what it gets.
 */

type Loose<T> = T extends (data: infer D) => unknown ? D : never;

describe("emulator with the public iamport-rest-client-nodejs client", () => {
  let t: TestEmulator;
  let hooks: WebhookReceiver;
  let iamport: Iamport;
  beforeAll(async () => {
    hooks = await new WebhookReceiver().start();
    t = await startTestEmulator({ webhookUrl: hooks.url });
    iamport = new Iamport({ apiKey: API_KEY, apiSecret: API_SECRET, baseUrl: t.emulator.url });
  });
  afterAll(async () => {
    await t.close();
    await hooks.close();
  });

  it("billing key → again → schedule → clock advance → look-ups → cancel", async () => {
    const { Customers, Subscribe, Payments } = Request;
    const customer_uid = uid("npm_cust");

    const issued = await Customers.postBillingKey({
      customer_uid,
      card_number: "4242-4242-4242-4242",
      expiry: "2099-12",
      birth: "900101",
      pwd_2digit: "12",
      customer_name: "홍길동",
      customer_tel: "010-0000-0000",
      customer_email: "hong@example.com",
      customer_addr: "서울",
      customer_postcode: "04524",
    }).request(iamport);
    expect(issued.data.code).toBe(0);
    expect(issued.data.response).toMatchObject({ customer_uid, card_number: "424242******4242", customer_name: "홍길동" });

    const fetched = await Customers.getBillingKey({ customer_uid }).request(iamport);
    expect(fetched.data.response).toMatchObject({ customer_uid });

    const firstOrder = uid("npm_order");
    const paid = await Subscribe.again({ customer_uid, merchant_uid: firstOrder, amount: 9900, name: "첫 결제" }).request(iamport);
    expect(paid.data.code).toBe(0);
    expect(paid.data.response).toMatchObject({ merchant_uid: firstOrder, status: "paid", amount: 9900, customer_uid_usage: "payment" });

    // A non-zero code rejects with {response: {data}} in this library.
    await expect(Subscribe.again({ customer_uid, merchant_uid: firstOrder, amount: 9900, name: "again" }).request(iamport)).rejects.toMatchObject({
      response: { data: { code: expect.any(Number), response: null } },
    });

    const now = await clockNow(t);
    const [renewal, later] = [uid("npm_renewal"), uid("npm_later")];
    const scheduled = await Subscribe.schedule({
      customer_uid,
      schedules: [
        { merchant_uid: renewal, schedule_at: now + 60, amount: 9900, name: "정기결제" },
        { merchant_uid: later, schedule_at: now + 600, amount: 9900, name: "정기결제" },
      ],
    }).request(iamport);
    expect(scheduled.data.response).toHaveLength(2);
    expect(scheduled.data.response[0]).toMatchObject({ merchant_uid: renewal, schedule_status: "scheduled" });
    // The library converts UNIX seconds to Dates.
    expect(scheduled.data.response[0].schedule_at).toEqual(new Date((now + 60) * 1000));

    const listed = await Subscribe.getScheduleds({
      customer_uid,
      from: now,
      to: now + 3600,
      "schedule-status": Enum.ScheduledStatusEnum.SCHEDULED,
    }).request(iamport);
    expect(listed.data.response).toMatchObject({ total: 2, previous: 0, next: 0 });
    expect(listed.data.response.list.map((s: { merchant_uid: string }) => s.merchant_uid)).toEqual([later, renewal]);

    const unscheduled = await Subscribe.unschedule({ customer_uid, merchant_uid: later }).request(iamport);
    expect(unscheduled.data.response).toMatchObject([{ merchant_uid: later, schedule_status: "revoked" }]);

    const ran = await advance(t, 61);
    expect(ran.executed).toEqual([{ merchant_uid: renewal, imp_uid: expect.any(String), status: "paid" }]);
    expect(ran.webhooks.delivered).toBe(1);
    const hook = hooks.received.find((h) => h.body.merchant_uid === renewal);
    expect(hook?.body).toEqual({ imp_uid: ran.executed[0].imp_uid, merchant_uid: renewal, status: "paid" });

    const schedule = await Subscribe.getScheduled({ merchant_uid: renewal }).request(iamport);
    expect(schedule.data.response).toMatchObject({ schedule_status: "executed", payment_status: "paid", imp_uid: ran.executed[0].imp_uid });

    const byImp = await Payments.getByImpUid({ imp_uid: ran.executed[0].imp_uid as string }).request(iamport);
    expect(byImp.data.response).toMatchObject({ merchant_uid: renewal, status: "paid", customer_uid_usage: "payment.scheduled", channel: "api" });
    const byMerchant = await Payments.getByMerchantUid({
      merchant_uid: renewal,
      status: Enum.StatusEnum.PAID,
      sorting: Enum.SortingEnum.STARTED_DESC,
    } as Loose<typeof Payments.getByMerchantUid>).request(iamport);
    expect(byMerchant.data.response.imp_uid).toBe(ran.executed[0].imp_uid);

    const partial = await Payments.cancel({
      imp_uid: ran.executed[0].imp_uid,
      amount: 900,
      checksum: 9900,
      reason: "부분 환불",
    } as Loose<typeof Payments.cancel>).request(iamport);
    expect(partial.data.response).toMatchObject({ status: "paid", cancel_amount: 900 });

    const full = await Payments.cancel({ merchant_uid: renewal, reason: "해지" } as Loose<typeof Payments.cancel>).request(iamport);
    expect(full.data.response).toMatchObject({ status: "cancelled", cancel_amount: 9900 });
    expect(full.data.response.cancel_history).toHaveLength(2);
    expect(full.data.response.cancelled_at).toBeInstanceOf(Date);

    const deleted = await Customers.deleteBillingKey({ customer_uid }).request(iamport);
    expect(deleted.data.response).toMatchObject({ customer_uid });
    await expect(Customers.getBillingKey({ customer_uid }).request(iamport)).rejects.toMatchObject({ response: { status: 404 } });
  });
});
