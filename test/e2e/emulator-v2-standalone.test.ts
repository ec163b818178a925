import { ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { PortOneClient, Webhook } from "@portone/server-sdk";
import { freePort, ROOT } from "../support/processes";
import { waitFor } from "../subscriptions/helpers";

/**
 * `npm run emulator` (the compiled standalone, built by the suite's global
 * setup): PortOne V2's API on a port of its own beside V1's, with the
 * documented defaults, and the whsec_ secret it prints, with which PortOne's
 * own SDK verifies the webhooks it signs.
 */
let child: ChildProcess;
let exited: Promise<void>;
let output = "";
let receiver: http.Server;
const received: { headers: Record<string, string>; body: string }[] = [];

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += String(c)));
    req.on("end", () => {
      received.push({ headers: req.headers as Record<string, string>, body });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/portone-webhook`;
  child = spawn(process.execPath, ["packages/iamport-emulator/dist/main.js"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", IAMPORT_EMULATOR_PORT: String(await freePort()), PORTONE_EMULATOR_PORT: String(await freePort()), IAMPORT_EMULATOR_V2_WEBHOOK_URL: hookUrl },
    stdio: ["ignore", "pipe", "pipe"],
  });
  exited = new Promise((resolve) => child.once("close", () => resolve()));
  child.stdout!.on("data", (d) => (output += String(d)));
  child.stderr!.on("data", (d) => (output += String(d)));
  await waitFor(async () => child.exitCode !== null || /"webhookSecret"/.test(output), 60_000);
  if (child.exitCode !== null) throw new Error(`the emulator exited:\n${output}`);
}, 90_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGTERM");
    await exited;
  }
  await new Promise((resolve) => receiver?.close(resolve));
});

it("serves V2 on its own port with the documented defaults; the secret it prints verifies its webhooks with the SDK", async () => {
  const url = /PortOne V2 emulator listening on (http:\/\/[\d.]+:\d+)/.exec(output)?.[1];
  const secret = /"webhookSecret":"(whsec_[A-Za-z0-9+/=]+)"/.exec(output)?.[1];
  expect(url).toBeDefined();
  expect(secret).toBeDefined();

  const portone = PortOneClient({ secret: "portone_emulator_secret", baseUrl: url!, storeId: "store-emulator" });
  const { billingKeyInfo } = await portone.payment.billingKey.issueBillingKey({
    channelKey: "channel-key-emulator",
    method: { card: { credential: { number: "4242424242424242", expiryYear: "31", expiryMonth: "12", birthOrBusinessRegistrationNumber: "880101" } } },
  });
  const paymentId = `standalone_${process.pid}`;
  await portone.payment.payWithBillingKey({ paymentId, billingKey: billingKeyInfo.billingKey, orderName: "standalone", amount: { total: 1_000 }, currency: "KRW" });

  await waitFor(async () => received.length >= 2);
  const verified = await Promise.all(received.map((r) => Webhook.verify(secret!, r.body, r.headers)));
  expect(verified).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ type: "BillingKey.Issued", data: expect.objectContaining({ billingKey: billingKeyInfo.billingKey }) }),
      expect.objectContaining({ type: "Transaction.Paid", data: expect.objectContaining({ paymentId }) }),
    ]),
  );
  // Another secret does not verify them.
  await expect(Webhook.verify(`whsec_${Buffer.alloc(24, 1).toString("base64")}`, received[0].body, received[0].headers)).rejects.toThrow();
});
