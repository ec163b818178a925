import http from "node:http";
import type { AddressInfo } from "node:net";
import axios, { type AxiosInstance, type AxiosRequestConfig } from "axios";
import { iamportAgents, nodeHttpAdapter, type IdempotentConfig } from "../../src/iamport/http-adapter";

/**
 * A server that answers the first request of each connection and resets the
 * connection when a second request arrives on it: what a client sees when it
 * writes onto a kept-alive socket that the server closed while it was idle.
 */
async function resettingServer(keepAliveHint?: string): Promise<{ url: string; connections: () => number; requests: () => number; close: () => Promise<void> }> {
  const served = new WeakMap<object, number>();
  let connections = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const n = (served.get(req.socket) ?? 0) + 1;
    served.set(req.socket, n);
    req.resume();
    req.on("end", () => {
      if (n > 1) {
        req.socket.resetAndDestroy();
        return;
      }
      const body = JSON.stringify({ code: 0, message: null, response: { n: requests } });
      const headers: Record<string, string | number> = { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) };
      if (keepAliveHint) headers["Keep-Alive"] = keepAliveHint;
      res.writeHead(200, headers).end(body);
    });
  });
  server.keepAliveTimeout = 60_000; // this server never closes an idle connection itself
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function client(baseURL: string): { http: AxiosInstance; destroy: () => void } {
  const agents = iamportAgents(4);
  const instance = axios.create({ baseURL, validateStatus: () => true, timeout: 5_000, adapter: nodeHttpAdapter(agents) });
  return { http: instance, destroy: () => (agents.http.destroy(), agents.https.destroy()) };
}

describe("the Iamport client's HTTP adapter", () => {
  it("sends a GET again on a new connection when the kept-alive one was reset before any answer", async () => {
    const s = await resettingServer();
    const c = client(s.url);
    try {
      expect((await c.http.get("/payments/a")).status).toBe(200);
      const second = await c.http.get("/payments/b");
      expect(second.status).toBe(200);
      expect(s.requests()).toBe(3); // the one reset, and the same request again
      expect(s.connections()).toBe(2);
    } finally {
      c.destroy();
      await s.close();
    }
  });

  it("sends a request marked idempotent again, and never a charge: its outcome is settled by asking Iamport", async () => {
    const s = await resettingServer();
    const c = client(s.url);
    try {
      expect((await c.http.post("/subscribe/payments/again", { amount: 1 })).status).toBe(200);
      await expect(c.http.post("/subscribe/payments/again", { amount: 1 })).rejects.toMatchObject({ code: "ECONNRESET" });
      expect(s.requests()).toBe(2); // not sent again

      const idempotent: AxiosRequestConfig & IdempotentConfig = { idempotent: true };
      expect((await c.http.post("/subscribe/customers/c1", { card: "x" }, idempotent)).status).toBe(200);
      expect((await c.http.post("/subscribe/customers/c1", { card: "x" }, idempotent)).status).toBe(200);
      expect(s.requests()).toBe(5); // 2 above, 1 on a new connection, then 1 reset and sent again
    } finally {
      c.destroy();
      await s.close();
    }
  });

  it("closes an idle connection before the server's announced keep-alive timeout ends", async () => {
    // `Keep-Alive: timeout=2`: node's agent closes the socket after 1 s idle (only when it has a timeout of its own).
    const s = await resettingServer("timeout=2");
    const c = client(s.url);
    try {
      expect((await c.http.post("/subscribe/payments/again", { amount: 1 })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 2_500));
      // Onto the old socket, this charge would be reset (and, not idempotent, not sent again).
      expect((await c.http.post("/subscribe/payments/again", { amount: 1 })).status).toBe(200);
      expect(s.connections()).toBe(2);
    } finally {
      c.destroy();
      await s.close();
    }
  });
});
