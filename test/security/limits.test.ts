import http from "node:http";
import net from "node:net";
import { Harness, registerCard, startHarness, uid } from "../support/harness";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    env: {
      GRAPHQL_MAX_DEPTH: "6",
      GRAPHQL_MAX_ALIASES: "5",
      RATE_LIMIT_PER_MINUTE: "40",
      RATE_LIMIT_PUBLIC_PER_MINUTE: "20",
      BODY_LIMIT: "20kb",
      CORS_ORIGINS: "https://shop.example",
    },
  });
});
afterAll(async () => {
  await h?.close();
});

const LEGIT = `query($c: String!) { card(customerUid: $c) { customerUid } }`;
async function legitWorks(): Promise<void> {
  const c = await registerCard(h, uid("ok"));
  const r = await h.gql(LEGIT, { c });
  expect(r.errors).toBeUndefined();
  expect(r.data).toEqual({ card: { customerUid: c } });
}

describe("GraphQL limits", () => {
  it("refuses a query deeper than GRAPHQL_MAX_DEPTH, then serves the next legitimate one", async () => {
    const deep = `{ payments { nodes { subscription { payments { nodes { subscription { payments { nodes { merchantUid } } } } } } } } }`;
    const r = await h.gql(deep);
    expect(r.status).toBe(400);
    expect(r.errors?.[0].extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(r.errors?.[0].message).toMatch(/depth/i);
    await legitWorks();
  });

  it("refuses more aliases than GRAPHQL_MAX_ALIASES", async () => {
    const aliases = Array.from({ length: 8 }, (_, i) => `a${i}: card(customerUid: "x") { customerUid }`).join(" ");
    const r = await h.gql(`{ ${aliases} }`);
    expect(r.status).toBe(400);
    expect(r.errors?.[0].extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(r.errors?.[0].message).toMatch(/alias/i);
    await legitWorks();
  });

  it("refuses batched operations", async () => {
    const r = await h.http.post("/graphql", [{ query: "{ __typename }" }, { query: "{ __typename }" }], {
      headers: { authorization: "Bearer test-merchant-key" },
    });
    expect(r.status).toBe(400);
    await legitWorks();
  });

  it("caps `first` at 100", async () => {
    const r = await h.gql(`{ payments(first: 101) { nodes { merchantUid } } }`);
    expect(r.errors?.[0].extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "first" });
  });

  it("shows no stack traces in errors", async () => {
    const r = await h.gql(`{ payment(merchantUid: "") { merchantUid } }`);
    expect(JSON.stringify(r.errors)).not.toMatch(/stacktrace|at .*\.ts:\d+/);
  });
});

describe("HTTP limits", () => {
  it("answers 413 for a body over BODY_LIMIT on /graphql and on webhooks, and keeps serving", async () => {
    const big = "x".repeat(30 * 1024);
    const g = await h.http.post("/graphql", { query: `{ card(customerUid: "${big}") { customerUid } }` }, { headers: { authorization: "Bearer test-merchant-key" } });
    expect(g.status).toBe(413);
    const w = await h.http.post("/iamport-webhook", { imp_uid: big });
    expect(w.status).toBe(413);
    expect(w.data).toMatchObject({ code: "PAYLOAD_TOO_LARGE" });
    await legitWorks();
  });

  it("sets security headers and a request id", async () => {
    const r = await h.http.get("/healthz", { headers: { "x-request-id": "req-abc-123" } });
    expect(r.headers["x-content-type-options"]).toBe("nosniff");
    expect(r.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(r.headers["x-request-id"]).toBe("req-abc-123");
    const bad = await h.http.get("/healthz", { headers: { "x-request-id": `${"a".repeat(100)};<script>` } });
    expect(bad.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("serves /graphql whatever the Host header holds (it names no URL the server builds)", async () => {
    const body = JSON.stringify({ query: "{ __typename }" });
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect(h.server.port, "127.0.0.1");
      let out = "";
      s.on("data", (d: Buffer) => (out += d.toString()));
      s.on("close", () => resolve(out));
      s.on("error", reject);
      s.write(
        `POST /graphql HTTP/1.1\r\nHost: a b\r\nAuthorization: Bearer test-merchant-key\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    expect(answer.split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
    expect(answer).toContain('{"data":{"__typename":"Query"}}');
  });

  it("answers headers over 16 KiB with 431 and Connection: close, so a keep-alive client does not reuse the connection", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const r = await h.http.get(`/graphql?query=${"A".repeat(30_000)}`, { httpAgent: agent });
      expect(r.status).toBe(431);
      expect(r.headers.connection).toBe("close");
      expect((await h.http.get("/healthz", { httpAgent: agent })).status).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it("allows CORS from CORS_ORIGINS on /graphql only", async () => {
    const ok = await h.http.options("/graphql", { headers: { origin: "https://shop.example", "access-control-request-method": "POST" } });
    expect(ok.headers["access-control-allow-origin"]).toBe("https://shop.example");
    // A browser app may send Idempotency-Key and read whether the answer was a replay.
    expect(ok.headers["access-control-allow-headers"]?.split(",")).toContain("idempotency-key");
    const post = await h.http.post("/graphql", { query: "{ __typename }" }, { headers: { origin: "https://shop.example" } });
    expect(post.headers["access-control-expose-headers"]).toBe("idempotent-replayed");
    const evil = await h.http.options("/graphql", { headers: { origin: "https://evil.example", "access-control-request-method": "POST" } });
    expect(evil.headers["access-control-allow-origin"]).toBeUndefined();
    const rest = await h.http.get("/healthz", { headers: { origin: "https://shop.example" } });
    expect(rest.headers["access-control-allow-origin"]).toBeUndefined();
  });
});

describe("rate limits", () => {
  it("limits a caller on /graphql with RATE_LIMITED, per key", async () => {
    let limited = 0;
    let lastStatus = 0;
    for (let i = 0; i < 50; i++) {
      const r = await h.gql(`{ __typename }`);
      lastStatus = r.status;
      if (r.status === 429) {
        limited++;
        expect(r.errors?.[0].extensions?.code).toBe("RATE_LIMITED");
      }
    }
    expect(limited).toBeGreaterThan(0);
    expect(lastStatus).toBe(429);
  });

  it("limits public routes per IP with 429", async () => {
    const answers = [];
    for (let i = 0; i < 25; i++) answers.push(await h.http.post("/billings", {}));
    const statuses = answers.map((r) => r.status);
    expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(20)).toEqual([429, 429, 429, 429, 429]);
    // The budget is announced on every answer, and a limited one says when to come back.
    expect(answers[0].headers["ratelimit-limit"]).toBe("20");
    expect(answers[0].headers["ratelimit-remaining"]).toBe("19");
    expect(answers[24].data).toMatchObject({ status: "failed", code: "RATE_LIMITED" });
    expect(Number(answers[24].headers["retry-after"])).toBeGreaterThan(0);
    // Health checks are never limited.
    expect((await h.http.get("/healthz")).status).toBe(200);
  });
});
