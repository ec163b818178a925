import http from "node:http";
import type { AddressInfo } from "node:net";
import helmet from "helmet";
import { precomputedHeaders } from "../../src/http/security";

type Mw = (req: http.IncomingMessage, res: http.ServerResponse, next: (err?: unknown) => void) => void;

/** The headers a node:http server answers with when `mw` runs before the answer. */
async function headersThrough(mw: Mw, path = "/graphql"): Promise<Record<string, string | string[] | undefined>> {
  const server = http.createServer((req, res) => {
    res.setHeader("X-Powered-By", "something");
    mw(req, res, () => res.end("ok"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port, path }, (res) => {
          res.resume();
          const { date: _date, ...rest } = res.headers;
          resolve(rest);
        })
        .on("error", reject);
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe("precomputedHeaders (helmet recorded once, replayed per response)", () => {
  const options = { contentSecurityPolicy: { directives: { "script-src": ["'self'"], "worker-src": ["'self'", "blob:"] } } };

  it("answers exactly the headers helmet itself sets and removes", async () => {
    const real = helmet(options) as unknown as Mw;
    const replayed = precomputedHeaders(real);
    expect(replayed).not.toBe(real);
    const expected = await headersThrough(helmet(options) as unknown as Mw);
    expect(expected["content-security-policy"]).toContain("script-src 'self'");
    expect(expected["x-powered-by"]).toBeUndefined();
    expect(await headersThrough(replayed)).toEqual(expected);
    expect(await headersThrough(replayed, "/iamport-webhook")).toEqual(expected);
  });

  it("keeps the middleware when its headers depend on the request", () => {
    let n = 0;
    const dynamic = helmet({ contentSecurityPolicy: { directives: { "script-src": ["'self'", () => `'nonce-${++n}'`] } } }) as unknown as Mw;
    expect(precomputedHeaders(dynamic)).toBe(dynamic);
  });

  it("replays in the recorded order, and keeps a middleware that looks at the request in any way", async () => {
    const removeThenSet: Mw = (_req, res, next) => {
      res.removeHeader("x-frame-options");
      res.setHeader("x-frame-options", "DENY");
      next();
    };
    const replayed = precomputedHeaders(removeThenSet);
    expect(replayed).not.toBe(removeThenSet);
    expect((await headersThrough(replayed))["x-frame-options"]).toBe("DENY");

    const inspects: Mw = (req, res, next) => {
      if ("secure" in req) res.setHeader("x-secure", "1");
      next();
    };
    const lists: Mw = (req, res, next) => {
      res.setHeader("x-fields", String(Object.keys(req).length));
      next();
    };
    expect(precomputedHeaders(inspects)).toBe(inspects);
    expect(precomputedHeaders(lists)).toBe(lists);
  });

  it("keeps a middleware that does more than set headers", () => {
    const reads: Mw = (req, res, next) => {
      res.setHeader("x-id", String(req.headers["x-id"] ?? "none"));
      next();
    };
    const answers: Mw = (_req, res) => {
      res.statusCode = 403;
      res.end();
    };
    expect(precomputedHeaders(reads)).toBe(reads);
    expect(precomputedHeaders(answers)).toBe(answers);
  });
});
