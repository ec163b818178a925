import {
  CUSTOMER_ANNOTATION,
  PAGED_PAYMENT_ANNOTATION,
  PAYMENT_ANNOTATION,
  PAYMENT_BALANCE_HISTORIES_ANNOTATION,
  PAYMENT_BALANCE_RESPONSE_ANNOTATION,
  SCHEDULE_RESULT_ANNOTATION,
  shapeErrors,
} from "./fixtures/iamport-v1-shapes";
import { TEST_CARDS } from "../src";
import { advance, clockNow, issueKey, startTestEmulator, uid, type Envelope, type TestEmulator } from "./helpers";

type Payment = { imp_uid: string; merchant_uid: string; status: string; amount: number; started_at: number; paid_at: number };
type Paged<T> = { total: number; previous: number; next: number; list: T[] };

/** The multiple look-ups, listings and balance of payments and billing keys, with the spec's shapes. */
describe("emulator: look-ups and listings", () => {
  let t: TestEmulator;
  beforeAll(async () => {
    t = await startTestEmulator();
  });
  afterAll(async () => {
    await t.close();
  });

  const again = async (customerUid: string, merchantUid = uid("order"), amount = 9900) => {
    const r = await t.api.post<Envelope<Payment>>("/subscribe/payments/again", { customer_uid: customerUid, merchant_uid: merchantUid, amount, name: "x" });
    expect(r.data.code).toBe(0);
    return r.data.response;
  };
  const get = <T>(path: string, params?: Record<string, unknown>) => t.api.get<Envelope<T>>(path, { params });

  describe("GET /subscribe/customers?customer_uid[]=", () => {
    it("answers every key asked for (200), the ones found (207), or 404 when none", async () => {
      const a = uid("cust");
      const b = uid("cust");
      await issueKey(t, a);
      await issueKey(t, b);
      const all = await t.api.get<Envelope<{ customer_uid: string }[]>>(`/subscribe/customers?customer_uid[]=${a}&customer_uid[]=${b}`);
      expect(all.status).toBe(200);
      expect(all.data.code).toBe(0);
      expect(all.data.response.map((c) => c.customer_uid)).toEqual([a, b]);
      for (const c of all.data.response) expect(shapeErrors(c, CUSTOMER_ANNOTATION)).toEqual([]);

      const some = await t.api.get<Envelope<{ customer_uid: string }[]>>(`/subscribe/customers?customer_uid[]=${a}&customer_uid[]=nobody_1`);
      expect(some.status).toBe(207);
      expect(some.data.response.map((c) => c.customer_uid)).toEqual([a]);
      expect(some.data.message).toContain("nobody_1");

      const none = await t.api.get<Envelope>(`/subscribe/customers?customer_uid[]=nobody_1`);
      expect(none.status).toBe(404);
      expect(none.data.response).toBeNull();
      expect((await t.api.get<Envelope>(`/subscribe/customers`)).status).toBe(400);
    });
  });

  describe("GET /subscribe/customers/{customer_uid}/payments and /schedules", () => {
    it("pages the key's payments newest first, and lists its schedules like /subscribe/payments/schedule/customers", async () => {
      const cu = uid("cust");
      await issueKey(t, cu);
      const made: string[] = [];
      for (let i = 0; i < 22; i++) made.push((await again(cu)).imp_uid);
      const p1 = (await get<Paged<Payment>>(`/subscribe/customers/${cu}/payments`)).data.response;
      expect(shapeErrors(p1, PAGED_PAYMENT_ANNOTATION)).toEqual([]);
      expect(p1).toMatchObject({ total: 22, previous: 0, next: 2 });
      expect(p1.list).toHaveLength(20);
      for (const p of p1.list) expect(shapeErrors(p, PAYMENT_ANNOTATION)).toEqual([]);
      const p2 = (await get<Paged<Payment>>(`/subscribe/customers/${cu}/payments`, { page: 2 })).data.response;
      expect(p2).toMatchObject({ total: 22, previous: 1, next: 0 });
      expect([...p1.list, ...p2.list].map((p) => p.imp_uid)).toEqual([...made].reverse());
      expect((await get(`/subscribe/customers/nobody_2/payments`)).status).toBe(404);

      const now = await clockNow(t);
      const sched = await t.api.post<Envelope>("/subscribe/payments/schedule", {
        customer_uid: cu,
        schedules: [
          { merchant_uid: uid("s"), schedule_at: now + 100, amount: 1000, name: "a" },
          { merchant_uid: uid("s"), schedule_at: now + 200, amount: 1000, name: "b" },
        ],
      });
      expect(sched.data.code).toBe(0);
      const q = { from: now, to: now + 1000 };
      const viaCustomer = (await get<Paged<Record<string, unknown>>>(`/subscribe/customers/${cu}/schedules`, q)).data.response;
      const viaSchedule = (await get<Paged<Record<string, unknown>>>(`/subscribe/payments/schedule/customers/${cu}`, q)).data.response;
      expect(viaCustomer).toEqual(viaSchedule);
      expect(viaCustomer.list.map((s) => s.schedule_at)).toEqual([now + 200, now + 100]);
      for (const s of viaCustomer.list) expect(shapeErrors(s, SCHEDULE_RESULT_ANNOTATION)).toEqual([]);
      expect((await get(`/subscribe/customers/${cu}/schedules`)).status).toBe(400); // from and to are required
    });
  });

  describe("GET /payments?imp_uid[]=&merchant_uid[]=", () => {
    it("answers payments by imp_uid and orders' latest payments by merchant_uid; 207 for some, 404 for none", async () => {
      const cu = uid("cust");
      await issueKey(t, cu);
      const a = await again(cu);
      const b = await again(cu);
      const r = await t.api.get<Envelope<Payment[]>>(`/payments?imp_uid[]=${a.imp_uid}&merchant_uid[]=${b.merchant_uid}`);
      expect(r.status).toBe(200);
      expect(r.data.response.map((p) => p.imp_uid)).toEqual([a.imp_uid, b.imp_uid]);
      for (const p of r.data.response) expect(shapeErrors(p, PAYMENT_ANNOTATION)).toEqual([]);
      const some = await t.api.get<Envelope<Payment[]>>(`/payments?imp_uid[]=${a.imp_uid}&imp_uid[]=imps_000000000000`);
      expect(some.status).toBe(207);
      expect(some.data.response.map((p) => p.imp_uid)).toEqual([a.imp_uid]);
      expect((await t.api.get(`/payments?imp_uid[]=imps_000000000000`)).status).toBe(404);
      expect((await t.api.get(`/payments`)).status).toBe(400);
      const tooMany = Array.from({ length: 101 }, (_, i) => `imp_uid[]=x${i}`).join("&");
      expect((await t.api.get(`/payments?${tooMany}`)).status).toBe(400);
    });
  });

  describe("GET /payments/findAll/{merchant_uid}/{status} and sorting on /payments/find", () => {
    it("lists every attempt of an order, filters by status, sorts and pages; /payments/find honours sorting", async () => {
      const cu = uid("cust");
      await issueKey(t, cu, { card_number: TEST_CARDS.DECLINED_LIMIT });
      const mu = uid("order");
      const f1 = await again(cu, mu);
      await advance(t, 60);
      const f2 = await again(cu, mu);
      await issueKey(t, cu); // a working card
      await advance(t, 60);
      const paid = await again(cu, mu);
      expect([f1.status, f2.status, paid.status]).toEqual(["failed", "failed", "paid"]);

      const all = (await get<Paged<Payment>>(`/payments/findAll/${mu}`)).data.response;
      expect(shapeErrors(all, PAGED_PAYMENT_ANNOTATION)).toEqual([]);
      expect(all.list.map((p) => p.imp_uid)).toEqual([paid.imp_uid, f2.imp_uid, f1.imp_uid]); // -started by default
      const oldestFirst = (await get<Paged<Payment>>(`/payments/findAll/${mu}`, { sorting: "started" })).data.response;
      expect(oldestFirst.list.map((p) => p.imp_uid)).toEqual([f1.imp_uid, f2.imp_uid, paid.imp_uid]);
      const failed = (await get<Paged<Payment>>(`/payments/findAll/${mu}/failed`, { limit: 1, page: 2 })).data.response;
      expect(failed).toMatchObject({ total: 2, previous: 1, next: 0 });
      expect(failed.list.map((p) => p.imp_uid)).toEqual([f1.imp_uid]);
      expect((await get(`/payments/findAll/${mu}/cancelled`)).status).toBe(404);
      expect((await get(`/payments/findAll/${mu}`, { sorting: "newest" })).status).toBe(400);
      expect((await get(`/payments/findAll/${mu}`, { limit: 1001 })).status).toBe(400);

      expect((await get<Payment>(`/payments/find/${mu}`)).data.response.imp_uid).toBe(paid.imp_uid);
      expect((await get<Payment>(`/payments/find/${mu}`, { sorting: "started" })).data.response.imp_uid).toBe(f1.imp_uid);
      expect((await get<Payment>(`/payments/find/${mu}/failed`, { sorting: "-started" })).data.response.imp_uid).toBe(f2.imp_uid);
      // Sorted by paid time, the unpaid attempts (paid_at 0) come first in ascending order.
      expect((await get<Payment>(`/payments/find/${mu}`, { sorting: "paid" })).data.response.imp_uid).toBe(f1.imp_uid);
      expect((await get<Payment>(`/payments/find/${mu}`, { sorting: "-paid" })).data.response.imp_uid).toBe(paid.imp_uid);
    });
  });

  describe("GET /payments/status/{payment_status}", () => {
    it("pages payments by the time of their status within at most 90 days", async () => {
      const fresh = await startTestEmulator();
      try {
        const cu = uid("cust");
        await issueKey(fresh, cu);
        const start = await clockNow(fresh);
        const ids: string[] = [];
        for (let i = 0; i < 3; i++) {
          const r = await fresh.api.post<Envelope<Payment>>("/subscribe/payments/again", { customer_uid: cu, merchant_uid: uid("o"), amount: 1000, name: "x" });
          ids.push(r.data.response.imp_uid);
          await fresh.http.post("/__emulator/clock/advance", { seconds: 86_400 });
        }
        const cancel = await fresh.api.post<Envelope>("/payments/cancel", { imp_uid: ids[0] });
        expect(cancel.data.code).toBe(0);
        const list = async (status: string, params: Record<string, unknown> = {}) => {
          const r = await fresh.api.get<Envelope<Paged<Payment>>>(`/payments/status/${status}`, { params });
          expect(r.status).toBe(200);
          expect(shapeErrors(r.data.response, PAGED_PAYMENT_ANNOTATION)).toEqual([]);
          return r.data.response;
        };
        expect((await list("paid")).list.map((p) => p.imp_uid)).toEqual([ids[2], ids[1]]);
        expect((await list("cancelled")).list.map((p) => p.imp_uid)).toEqual([ids[0]]);
        expect((await list("all", { sorting: "started" })).list.map((p) => p.imp_uid)).toEqual(ids);
        expect(await list("all", { limit: 2, page: 2 })).toMatchObject({ total: 3, previous: 1, next: 0 });
        // Paid on the first day only: a window around it.
        expect((await list("paid", { from: start + 86_400 - 10, to: start + 86_400 + 10 })).list.map((p) => p.imp_uid)).toEqual([ids[1]]);
        expect((await fresh.api.get(`/payments/status/paid`, { params: { from: 0, to: 91 * 86_400 } })).status).toBe(400);
        expect((await fresh.api.get(`/payments/status/refunded`)).status).toBe(400);
      } finally {
        await fresh.close();
      }
    });
  });

  describe("GET /payments/{imp_uid}/balance", () => {
    it("splits what is left into supply and VAT, with one history entry per payment and cancellation", async () => {
      const cu = uid("cust");
      await issueKey(t, cu);
      const p = await again(cu, uid("order"), 11_000);
      const cancel = await t.api.post<Envelope>("/payments/cancel", { imp_uid: p.imp_uid, amount: 2200 });
      expect(cancel.data.code).toBe(0);
      const r = await get<Record<string, unknown> & { histories: Record<string, unknown>[] }>(`/payments/${p.imp_uid}/balance`);
      expect(r.status).toBe(200);
      expect(shapeErrors(r.data.response, PAYMENT_BALANCE_RESPONSE_ANNOTATION)).toEqual([]);
      for (const h of r.data.response.histories) expect(shapeErrors(h, PAYMENT_BALANCE_HISTORIES_ANNOTATION)).toEqual([]);
      expect(r.data.response).toMatchObject({ amount: 11_000, primary: { tax_free: 0, supply: 8000, vat: 800, service: 0 } });
      expect(r.data.response.histories.map((h) => h.primary)).toEqual([
        { tax_free: 0, supply: 10_000, vat: 1000, service: 0 },
        { tax_free: 0, supply: -2000, vat: -200, service: 0 },
      ]);
      expect((await get(`/payments/imps_000000000000/balance`)).status).toBe(404);
    });
  });
});
