import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { TEST_CARDS } from "../src";
import { advance, clockNow, issueKey, startTestEmulator, uid, WebhookReceiver, type Envelope, type TestEmulator } from "./helpers";

/*
 * The emulator started with a state file keeps what Iamport would keep across
 * a restart: billing keys (masked card details), payments, schedules, prepared
 * amounts and its clock. Never card data.
 */

describe("emulator: state file", () => {
  let dir: string;
  let file: string;
  let hooks: WebhookReceiver;
  const running: TestEmulator[] = [];

  const start = async () => {
    const t = await startTestEmulator({ stateFile: file, webhookUrl: hooks.url });
    running.push(t);
    return t;
  };

  beforeAll(async () => {
    hooks = await new WebhookReceiver().start();
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "emulator-state-"));
    file = path.join(dir, "nested", "emulator.json");
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((t) => t.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await hooks.close();
  });

  it("restores keys, schedules, payments and the clock, and a restored schedule runs when the clock reaches it", async () => {
    const first = await start();
    const customer = uid("cust");
    await issueKey(first, customer);
    const charged = await first.api.post<Envelope<{ imp_uid: string; status: string }>>("/subscribe/payments/again", {
      customer_uid: customer,
      merchant_uid: uid("order"),
      amount: 1000,
      name: "first",
    });
    expect(charged.data.response.status).toBe("paid");
    await advance(first, 86_400);
    const now = await clockNow(first);
    const merchantUid = uid("sched");
    const scheduled = await first.api.post<Envelope<unknown[]>>("/subscribe/payments/schedule", {
      customer_uid: customer,
      schedules: [{ merchant_uid: merchantUid, schedule_at: now + 3600, amount: 9900, name: "renewal" }],
    });
    expect(scheduled.data.code).toBe(0);
    await first.close();

    const second = await start();
    // The clock continues where it was (plus the real time that passed), not at real time.
    expect(await clockNow(second)).toBeGreaterThanOrEqual(now);
    const key = await second.api.get<Envelope<{ customer_uid: string; card_number: string }>>(`/subscribe/customers/${customer}`);
    expect(key.data.response).toMatchObject({ customer_uid: customer, card_number: "424242******4242" });
    const payment = await second.api.get<Envelope<{ status: string; amount: number }>>(`/payments/${charged.data.response.imp_uid}`);
    expect(payment.data.response).toMatchObject({ status: "paid", amount: 1000 });
    const sched = await second.api.get<Envelope<{ schedule_status: string }>>(`/subscribe/payments/schedule/${merchantUid}`);
    expect(sched.data.response.schedule_status).toBe("scheduled");

    const ran = await advance(second, 3600);
    expect(ran.executed).toEqual([expect.objectContaining({ merchant_uid: merchantUid, status: "paid" })]);
    await hooks.waitUntil((h) => h.body.merchant_uid === merchantUid);
    // A paid order is still known as paid: it cannot be charged again.
    const again = await second.api.post<Envelope<unknown>>("/subscribe/payments/again", {
      customer_uid: customer,
      merchant_uid: merchantUid,
      amount: 9900,
      name: "again",
    });
    expect(again.data.code).not.toBe(0);
  });

  it("keeps a test card's behaviour: the card that declines after its first charge still does", async () => {
    const first = await start();
    const customer = uid("cust");
    await issueKey(first, customer, { card_number: TEST_CARDS.DECLINES_AFTER_FIRST_CHARGE });
    const charge = (t: TestEmulator) =>
      t.api.post<Envelope<{ status: string }>>("/subscribe/payments/again", { customer_uid: customer, merchant_uid: uid("o"), amount: 500, name: "x" });
    expect((await charge(first)).data.response.status).toBe("paid");
    await first.close();

    const second = await start();
    expect((await charge(second)).data.response.status).toBe("failed");
  });

  it("writes the file shortly after a change, before any close", async () => {
    const t = await start();
    const customer = uid("cust");
    await issueKey(t, customer);
    const deadline = Date.now() + 10_000;
    while (!(fs.existsSync(file) && fs.readFileSync(file, "utf8").includes(customer))) {
      if (Date.now() > deadline) throw new Error("the state file was not written");
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(fs.readdirSync(path.dirname(file))).toEqual(["emulator.json"]);
  });

  it("never writes card data: no number, fingerprint, expiry, birth or password", async () => {
    const t = await start();
    const digits = "5555555555554444";
    await issueKey(t, uid("cust"), { card_number: "5555-5555-5555-4444", expiry: "2037-08", birth: "861224", pwd_2digit: "73" });
    // A charge without a key, and a key issued with a charge: the card passes through both.
    const onetime = await t.api.post<Envelope<{ status: string }>>("/subscribe/payments/onetime", {
      merchant_uid: uid("one"),
      amount: 1200,
      card_number: "4242-4242-4242-4242",
      expiry: "2036-05",
      birth: "7707071234",
      pwd_2digit: "91",
      customer_uid: uid("cust"),
    });
    expect(onetime.data.response.status).toBe("paid");
    await t.close();

    const text = fs.readFileSync(file, "utf8");
    expect(text).toContain("555555******4444");
    expect(text).toContain("424242******4242");
    for (const secret of [digits, "5555-5555-5555-4444", "4242424242424242", "4242-4242-4242-4242", "2037-08", "2036-05", "861224", "7707071234", "\"73\"", "\"91\""]) {
      expect(text).not.toContain(secret);
    }
    for (const number of [digits, "4242424242424242"]) {
      expect(text).not.toContain(createHash("sha256").update(number).digest("base64url"));
    }
    // The end of the expiry month as a timestamp is the expiry too.
    const validUntil = (y: number, m: number) => String(Date.UTC(y, m, 1) / 1000 - 9 * 3600);
    expect(text).not.toContain(validUntil(2037, 8));
    expect(text).not.toContain(validUntil(2036, 5));
    for (const field of ["expiry", "birth", "pwd_2digit", "fingerprint", "validUntil"]) expect(text).not.toContain(`"${field}"`);
    const numbers = [...text.matchAll(/"card_number":"([^"]*)"/g)].map((m) => m[1]);
    expect(numbers.length).toBeGreaterThan(0);
    for (const n of numbers) expect(n).toMatch(/^\d{6}\*+\d{4}$/);
  });

  it("saves a reset as empty", async () => {
    const first = await start();
    await issueKey(first, uid("cust"));
    await advance(first, 7200);
    await first.http.post("/__emulator/reset");
    await first.close();

    const second = await start();
    const health = await second.http.get<{ customers: number; payments: number; schedules: number }>("/__emulator/health");
    expect(health.data).toMatchObject({ customers: 0, payments: 0, schedules: 0 });
    expect((await clockNow(second)) - Math.floor(Date.now() / 1000)).toBeLessThan(7200);
  });

  it("refuses to start from a file it cannot use, naming it", async () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, "{ not json");
    await expect(startTestEmulator({ stateFile: file })).rejects.toThrow(`${file} is not valid JSON`);
    fs.writeFileSync(file, JSON.stringify({ version: 99 }));
    await expect(startTestEmulator({ stateFile: file })).rejects.toThrow(`${file} is not one this emulator writes`);
  });
});
