import { ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PortOneClient } from "@portone/server-sdk";
import axios from "axios";
import { API_KEY, createTestDatabase } from "../support/harness";
import { freePort, ROOT } from "../support/processes";

/**
 * The compiled server (what `npm start` runs, built by the suite's global
 * setup) choosing its provider from the environment alone: both providers'
 * credentials are refused with one line, and PortOne V2 chosen without
 * credentials serves the emulator's V2 API in-process, which PortOne's own
 * SDK drives. The environment is given whole (PATH and what the case sets),
 * so nothing of the test process's leaks in.
 */
interface Run {
  child: ChildProcess;
  output: () => string;
  stderr: () => string[];
  exited: Promise<number | null>;
}

function run(env: Record<string, string>): Run {
  const child = spawn(process.execPath, ["dist/main.js"], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += String(d)));
  child.stderr!.on("data", (d) => {
    out += String(d);
    err += String(d);
  });
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { child, output: () => out, stderr: () => err.split("\n").filter(Boolean), exited };
}

const V1 = { IAMPORT_API_KEY: "imp_key", IAMPORT_API_SECRET: "imp_secret" };
const V2 = { PORTONE_API_SECRET: "portone-secret", PORTONE_STORE_ID: "store-1", PORTONE_CHANNEL_KEY: "channel-key", PORTONE_WEBHOOK_SECRET: "whsec_c2VjcmV0" };

it("both providers' credentials: exits 1 with one line naming the choice, before opening anything", async () => {
  const port = await freePort();
  const r = run({ ...V1, ...V2, PORT: String(port), API_KEYS: API_KEY });
  expect(await r.exited).toBe(1);
  expect(r.stderr()).toEqual([expect.stringMatching(/PORTONE_API_SECRET and IAMPORT_API_KEY are both set: choose one provider.*PAYMENT_PROVIDER_MIGRATION=v1_to_v2/)]);
  // Nothing was served meanwhile.
  expect(await axios.get(`http://127.0.0.1:${port}/healthz`, { timeout: 2000 }).catch((e: Error) => e)).toBeInstanceOf(Error);
});

describe("PAYMENT_PROVIDER=v2 with no PortOne credentials", () => {
  let r: Run;
  let port: number;
  let dataDir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;

  beforeAll(async () => {
    port = await freePort();
    const [emulatorPort, portonePort] = [await freePort(), await freePort()];
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "billing-v2-start-"));
    db = await createTestDatabase();
    r = run({
      PAYMENT_PROVIDER: "v2",
      PORT: String(port),
      IAMPORT_EMULATOR_PORT: String(emulatorPort),
      PORTONE_EMULATOR_PORT: String(portonePort),
      API_KEYS: API_KEY,
      RATE_LIMIT_PER_MINUTE: "0",
      ...(db ? { DATABASE_URL: db.url } : { PGLITE_DATA_DIR: dataDir }),
    });
    const deadline = Date.now() + 150_000;
    while (!r.output().includes("Billing server ready on")) {
      if (Date.now() > deadline || r.child.exitCode !== null) throw new Error(`server did not start:\n${r.output()}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }, 180_000);

  afterAll(async () => {
    if (r && r.child.exitCode === null) {
      r.child.kill("SIGTERM");
      const timer = setTimeout(() => r.child.kill("SIGKILL"), 15_000);
      await r.exited;
      clearTimeout(timer);
    }
    await db?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("prints the emulator's V2 API, checks it for readiness, and PortOne's SDK drives it; the server charges the key the SDK issued", async () => {
    const printed = /PortOne V2\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(r.output());
    expect(printed).not.toBeNull();
    const ready = await axios.get(`http://127.0.0.1:${port}/readyz`);
    expect(ready.data.checks).toMatchObject({ portone: "ok" });

    // The documented defaults of the emulator's V2 API.
    const portone = PortOneClient({ secret: "portone_emulator_secret", baseUrl: printed![1], storeId: "store-emulator" });
    const customerUid = `v2start_${process.pid}`;
    const { billingKeyInfo } = await portone.payment.billingKey.issueBillingKey({
      channelKey: "channel-key-emulator",
      method: { card: { credential: { number: "4242424242424242", expiryYear: "31", expiryMonth: "12", birthOrBusinessRegistrationNumber: "880101" } } },
      customer: { id: customerUid },
    });
    // The key a browser was given, confirmed through the server, then charged by it.
    const http = axios.create({ baseURL: `http://127.0.0.1:${port}`, headers: { authorization: `Bearer ${API_KEY}` }, validateStatus: () => true });
    const confirmed = await http.post("/billings", { customer_uid: customerUid, billing_key: billingKeyInfo.billingKey });
    expect(confirmed.data).toMatchObject({ status: "success", card: { customerUid, status: "ACTIVE" } });
    const charged = await http.post("/graphql", {
      query: `mutation($c: String!) { chargeAgain(input: {customerUid: $c, amount: 4900, name: "start"}) { merchantUid status paidAmount } }`,
      variables: { c: customerUid },
    });
    expect(charged.data.data.chargeAgain).toMatchObject({ status: "PAID", paidAmount: 4900 });
    const atPortOne = await portone.payment.getPayment({ paymentId: charged.data.data.chargeAgain.merchantUid });
    expect(atPortOne).toMatchObject({ status: "PAID", billingKey: billingKeyInfo.billingKey, amount: { total: 4900 } });
  });
});
