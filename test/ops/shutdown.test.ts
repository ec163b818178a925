import { ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import axios from "axios";
import { RunningEmulator, startEmulator } from "#iamport-emulator";
import { API_KEY, createTestDatabase, GOOD_CARD, Harness, PAYMENT_FIELDS, REGISTER_CARD, registerCard, startHarness, uid } from "../support/harness";
import { waitFor } from "../subscriptions/helpers";

/**
 * A shutdown (SIGTERM, or RunningServer.close()) stops accepting connections
 * at once, answers every request already in flight in full, each with
 * `Connection: close` so that no client sends another request on a
 * connection about to close, and only then stops Apollo, reconciliation and
 * the pool. Requests are held in flight deterministically: a charge whose
 * Iamport call the emulator holds until the test releases it (fault "hold",
 * with the server's Iamport timeout far longer than any test step, so the
 * charge cannot end by itself before the shutdown has begun), and a request
 * whose headers the server has read (it answered `100 Continue`) but whose
 * body is sent only after the shutdown began.
 */

const CHARGE = `mutation Charge($input: ChargeAgainInput!) { chargeAgain(input: $input) { ${PAYMENT_FIELDS} } }`;
const PAYMENT = `query Payment($m: String) { payment(merchantUid: $m) { merchantUid status } }`;
const CHARGE_ROUTE = "POST /subscribe/payments/again";

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A POST whose headers are sent now and whose body is sent by `finish()`:
 * resolves once the server answered `100 Continue`, i.e. once it has read
 * the headers and the request is in progress on its connection.
 */
async function startRequest(port: number, urlPath: string, body: string, headers: Record<string, string>): Promise<{ finish(): Promise<RawAnswer> }> {
  const socket = net.connect(port, "127.0.0.1");
  let buffer = Buffer.alloc(0);
  let onData: (() => void) | undefined;
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    onData?.();
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.on("error", () => undefined);
  const until = (done: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (done()) {
          onData = undefined;
          resolve();
        }
      };
      onData = check;
      void closed.then(() => (done() ? resolve() : reject(new Error(`connection closed; received: ${buffer.toString()}`))));
      check();
    });
  const head = Object.entries({ ...headers, host: `127.0.0.1:${port}`, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), expect: "100-continue", connection: "keep-alive" })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  socket.write(`POST ${urlPath} HTTP/1.1\r\n${head}\r\n`);
  const CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";
  await until(() => buffer.toString("latin1").startsWith(CONTINUE));
  buffer = buffer.subarray(CONTINUE.length);
  return {
    async finish() {
      socket.write(body);
      let answer: RawAnswer | undefined;
      await until(() => {
        const text = buffer.toString("latin1");
        const end = text.indexOf("\r\n\r\n");
        if (end < 0) return false;
        const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
        const hs = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
        const length = Number(hs["content-length"]);
        const rest = buffer.subarray(Buffer.byteLength(text.slice(0, end + 4), "latin1"));
        if (rest.length < length) return false;
        answer = { status: Number(statusLine.split(" ")[1]), headers: hs, body: rest.subarray(0, length).toString("utf8") };
        return true;
      });
      socket.destroy();
      return answer!;
    },
  };
}

/** The error code of a new TCP connection to the port, or "connected". */
function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** No pending faults left at the emulator: the held call has reached it. */
async function faultTaken(emu: string): Promise<void> {
  await waitFor(async () => (await axios.get(`${emu}/__emulator/faults`)).data.faults.length === 0);
}

/** Waits until the emulator holds the charge's answer (fault "hold"); returns its id for `releaseCharge`. */
async function heldCharge(emu: string): Promise<number> {
  return waitFor(async () => (await axios.get<{ held: { id: number }[] }>(`${emu}/__emulator/faults/held`)).data.held[0]?.id, 30_000, 20);
}

async function releaseCharge(emu: string, id: number): Promise<void> {
  expect((await axios.post(`${emu}/__emulator/faults/release`, { id })).data).toEqual({ released: 1 });
}

/** The GraphQL answer to a held charge: complete, never INTERNAL_SERVER_ERROR (the lost answer of Iamport is a known code). */
function expectCompleteGraphqlAnswer(status: number, body: { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] }): void {
  expect(status).toBe(200);
  expect(body.data !== undefined || body.errors !== undefined).toBe(true);
  for (const e of body.errors ?? []) {
    expect(e.extensions?.code).not.toBe("INTERNAL_SERVER_ERROR");
    expect(e.message).not.toMatch(/server has stopped|server is stopping/);
  }
}

describe("RunningServer.close()", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { RATE_LIMIT_PER_MINUTE: "0", RATE_LIMIT_PUBLIC_PER_MINUTE: "0", IAMPORT_TIMEOUT_MS: "60000", SHUTDOWN_DRAIN_MS: "120000" }, emulator: { timeoutHoldMs: 60_000 } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("stops accepting at once, answers the requests in flight in full with Connection: close, then stops", async () => {
    const customerUid = await registerCard(h, uid("drain"));
    await h.emu.post("/__emulator/faults", { route: CHARGE_ROUTE, mode: "hold", times: 1 });
    const agent = new http.Agent({ keepAlive: true });
    const auth = { authorization: `Bearer ${API_KEY}` };
    const charging = h.http.post("/graphql", { query: CHARGE, variables: { input: { customerUid, amount: 5000, name: "Plan" } } }, { headers: auth, httpAgent: agent });
    const held = await heldCharge(h.emulator.url);
    const late = await startRequest(h.server.port, "/graphql", JSON.stringify({ query: PAYMENT, variables: { m: "order_none" } }), auth);

    const closing = h.server.close();
    expect(await connectOutcome(h.server.port)).toBe("ECONNREFUSED");

    // A request whose body arrives during the drain is still served, by a running Apollo, on a database still open.
    const lateAnswer = await late.finish();
    expect(lateAnswer.status).toBe(200);
    expect(lateAnswer.headers.connection).toBe("close");
    expect(JSON.parse(lateAnswer.body)).toEqual({ data: { payment: null } });

    // Iamport answers the charge only now, during the drain.
    await releaseCharge(h.emulator.url, held);
    const charged = await charging;
    expectCompleteGraphqlAnswer(charged.status, charged.data);
    expect(charged.headers.connection).toBe("close");
    await closing;
    agent.destroy();
  });
});

describe("SHUTDOWN_DRAIN_MS", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { SHUTDOWN_DRAIN_MS: "200", IAMPORT_TIMEOUT_MS: "60000" }, emulator: { timeoutHoldMs: 60_000 } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("bounds the drain: a request still in flight when it ends has its connection closed, and the server stops", async () => {
    const customerUid = await registerCard(h, uid("drainbound"));
    await h.emu.post("/__emulator/faults", { route: CHARGE_ROUTE, mode: "timeout", times: 1 });
    const charging = h.http.post("/graphql", { query: CHARGE, variables: { input: { customerUid, amount: 5000, name: "Plan" } } }, { headers: { authorization: `Bearer ${API_KEY}` } }).then(
      (r) => `answered ${r.status}`,
      (err: NodeJS.ErrnoException) => err.code ?? err.message,
    );
    await faultTaken(h.emulator.url);
    // Iamport holds the charge for a minute: close() ends at the drain's bound, not when the charge ends.
    await h.server.close();
    expect(await charging).toMatch(/ECONNRESET|socket hang up/);
  });
});

describe("SIGTERM to a server process", () => {
  const ROOT = path.resolve(__dirname, "../..");
  let emulator: RunningEmulator;
  let db: { url: string; drop: () => Promise<void> } | undefined;
  let dataDir: string | undefined;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    emulator = await startEmulator({ port: 0, autoRunIntervalMs: 0, timeoutHoldMs: 120_000 });
    db = await createTestDatabase();
    if (!db) dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "billing-sigterm-"));
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await emulator?.close();
    await db?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("answers every request in flight (no reset, no 500 from a stopped Apollo), refuses new connections, and exits 0", async () => {
    const { NODE_OPTIONS: _ignored, ...inherited } = process.env;
    const output: string[] = [];
    // Not NODE_ENV=test: Apollo's own SIGTERM handling is active outside tests, which is what is checked here.
    child = spawn(process.execPath, [path.join(ROOT, "dist/main.js")], {
      cwd: ROOT,
      env: {
        ...inherited,
        NODE_ENV: "development",
        PORT: "0",
        HOST: "127.0.0.1",
        ...(db ? { DATABASE_URL: db.url } : { DATABASE_URL: "", PGLITE_DATA_DIR: dataDir! }),
        IAMPORT_API_URL: emulator.url,
        IAMPORT_API_KEY: "imp_apikey",
        IAMPORT_API_SECRET: "emulator_secret",
        IAMPORT_TIMEOUT_MS: "60000",
        SHUTDOWN_DRAIN_MS: "120000",
        API_KEYS: API_KEY,
        RECONCILE_INTERVAL_SECONDS: "0",
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: Buffer) => output.push(...String(chunk).split("\n").filter(Boolean));
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    const exited = new Promise<number | null>((resolve) => child!.once("exit", (code) => resolve(code)));
    const logged = (msg: string) => () => Promise.resolve(output.some((l) => l.includes(msg)));
    await waitFor(
      async () => {
        if (child!.exitCode !== null) throw new Error(`the server exited:\n${output.join("\n")}`);
        return output.some((l) => l.includes("billing server listening"));
      },
      150_000,
    );
    const listening = JSON.parse(output.find((l) => l.includes("billing server listening"))!) as { graphql: string };
    const port = Number(new URL(listening.graphql).port);
    const base = `http://127.0.0.1:${port}`;
    const auth = { authorization: `Bearer ${API_KEY}` };

    const customerUid = uid("sigterm");
    const registered = await axios.post(
      `${base}/graphql`,
      { query: REGISTER_CARD, variables: { input: { customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12" } } },
      { headers: auth },
    );
    expect(registered.data.errors).toBeUndefined();

    await axios.post(`${emulator.url}/__emulator/faults`, { route: CHARGE_ROUTE, mode: "hold", times: 1 });
    const agent = new http.Agent({ keepAlive: true });
    const charging = axios.post(`${base}/graphql`, { query: CHARGE, variables: { input: { customerUid, amount: 5000, name: "Plan" } } }, { headers: auth, httpAgent: agent, validateStatus: () => true });
    const held = await heldCharge(emulator.url);
    const late = await startRequest(port, "/graphql", JSON.stringify({ query: PAYMENT, variables: { m: "order_none" } }), auth);

    child.kill("SIGTERM");
    await waitFor(logged("shutting down"));
    const lateAnswer = await late.finish();
    expect({ status: lateAnswer.status, body: JSON.parse(lateAnswer.body) }).toEqual({ status: 200, body: { data: { payment: null } } });
    expect(lateAnswer.headers.connection).toBe("close");

    await waitFor(logged("stopped accepting connections"));
    expect(await connectOutcome(port)).toBe("ECONNREFUSED");

    // Iamport answers the charge only now, during the drain.
    await releaseCharge(emulator.url, held);
    const charged = await charging;
    expectCompleteGraphqlAnswer(charged.status, charged.data);
    expect(charged.headers.connection).toBe("close");
    agent.destroy();
    expect(await exited).toBe(0);
  }, 240_000);
});
