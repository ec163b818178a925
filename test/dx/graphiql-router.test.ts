/**
 * /graphiql over plain HTTP (no browser): off when disabled, the key prefilled only for a
 * loopback browser, no inline script, nothing from another origin, the assets from node_modules.
 */
import type { AddressInfo } from "node:net";
import axios, { type AxiosInstance } from "axios";
import Fastify from "fastify";
import { exampleTabs, graphiqlRoutes, type GraphiqlOptions } from "../../src/http/graphiql";

async function serve(opts: GraphiqlOptions): Promise<{ http: AxiosInstance; close: () => Promise<void> }> {
  const app = Fastify();
  for (const r of graphiqlRoutes(opts)) app.route(r);
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ code: "NOT_FOUND" }));
  await app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  return {
    http: axios.create({ baseURL: `http://127.0.0.1:${port}`, validateStatus: () => true, responseType: "text", transformResponse: (d) => d }),
    close: () => app.close(),
  };
}

/** The settings the page hands to init.js. */
function settingsOf(html: string): { endpoint: string; headers: string; tabs: { query: string; variables: string }[] } {
  const m = /<script id="graphiql-settings" type="application\/json">([^<]*)<\/script>/.exec(html);
  if (!m) throw new Error("no settings block in the page");
  return JSON.parse(m[1]);
}

describe("graphiqlRoutes", () => {
  it("serves nothing when disabled", async () => {
    const s = await serve({ enabled: false, apiKey: "k" });
    try {
      for (const p of ["/graphiql", "/graphiql/init.js", "/graphiql/assets/graphiql.min.js"]) expect((await s.http.get(p)).status).toBe(404);
    } finally {
      await s.close();
    }
  });

  it("sends / to GraphiQL only when asked (development), and never when GraphiQL is off", async () => {
    for (const [opts, status] of [
      [{ enabled: true, rootRedirect: true }, 302],
      [{ enabled: true }, 404],
      [{ enabled: false, rootRedirect: true }, 404],
    ] as const) {
      const s = await serve(opts);
      try {
        const r = await s.http.get("/", { maxRedirects: 0 });
        expect({ opts, status: r.status }).toEqual({ opts, status });
        if (status === 302) expect(r.headers.location).toBe("/graphiql");
      } finally {
        await s.close();
      }
    }
  });

  describe("enabled", () => {
    let s: Awaited<ReturnType<typeof serve>>;
    beforeAll(async () => {
      s = await serve({ enabled: true, apiKey: "dev_secret_key" });
    });
    afterAll(() => s.close());

    it("serves the page with a strict CSP, no inline script and no other origin", async () => {
      const r = await s.http.get("/graphiql");
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toMatch(/^text\/html/);
      expect(r.headers["cache-control"]).toBe("no-store");
      const csp = String(r.headers["content-security-policy"]);
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toMatch(/script-src[^;]*unsafe/);
      expect(csp).toContain("connect-src 'self'");
      const html = r.data as string;
      // Every <script> loads a file from this server, except the JSON data block (not executed).
      const scripts = [...html.matchAll(/<script([^>]*)>([^<]*)<\/script>/g)];
      expect(scripts.length).toBe(5);
      for (const [, attrs, body] of scripts) {
        if (attrs.includes('type="application/json"')) continue;
        expect(attrs).toMatch(/ src="\/graphiql\//);
        expect(body).toBe("");
      }
      expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    });

    it("prefills the key for a browser on this machine, not through a proxy", async () => {
      const local = settingsOf((await s.http.get("/graphiql")).data);
      expect(JSON.parse(local.headers)).toEqual({ Authorization: "Bearer dev_secret_key" });
      expect(local.endpoint).toBe("/graphql");
      expect(local.tabs.map((t) => /(mutation|query|subscription) (\w+)/.exec(t.query)?.[2] ?? "?")).toEqual(["RegisterCard", "ChargeAgain", "StartSubscription", "Payments", "LiveEvents"]);

      const proxied = (await s.http.get("/graphiql", { headers: { "x-forwarded-for": "203.0.113.9" } })).data as string;
      expect(proxied).not.toContain("dev_secret_key");
      expect(JSON.parse(settingsOf(proxied).headers)).toEqual({ Authorization: "Bearer <one of API_KEYS>" });
    });

    it("serves init.js and the assets from the installed packages", async () => {
      const init = await s.http.get("/graphiql/init.js");
      expect(init.status).toBe(200);
      expect(init.headers["content-type"]).toMatch(/^application\/javascript/);
      expect(init.data).toContain("GraphiQL.createFetcher");
      for (const [name, type, marker] of [
        ["graphiql.min.js", /^application\/javascript/, "GraphiQL"],
        ["graphiql.min.css", /^text\/css/, ".graphiql-container"],
        ["react.production.min.js", /^application\/javascript/, "React"],
        ["react-dom.production.min.js", /^application\/javascript/, "ReactDOM"],
        ["page.css", /^text\/css/, "#graphiql"],
      ] as const) {
        const r = await s.http.get(`/graphiql/assets/${name}`);
        expect([name, r.status]).toEqual([name, 200]);
        expect(r.headers["content-type"]).toMatch(type);
        expect(r.data).toContain(marker);
      }
      expect((await s.http.get("/graphiql/assets/package.json")).status).toBe(404);
      expect((await s.http.get("/graphiql/assets/..%2fpackage.json")).status).toBe(404);
    });
  });

  it("never shows a key configured as a sha256: digest, nor any key when none is given (production)", async () => {
    for (const apiKey of [`sha256:${"a".repeat(64)}`, undefined]) {
      const s = await serve({ enabled: true, apiKey });
      try {
        const settings = settingsOf((await s.http.get("/graphiql")).data);
        expect(JSON.parse(settings.headers)).toEqual({ Authorization: "Bearer <one of API_KEYS>" });
      } finally {
        await s.close();
      }
    }
  });

  it("examples use the emulator's paying test card and an expiry in the future", () => {
    const vars = JSON.parse(exampleTabs(new Date("2040-06-01T00:00:00Z"))[0].variables);
    expect(vars.input).toMatchObject({ cardNumber: "4242-4242-4242-4242", expiry: "2045-12" });
  });
});
