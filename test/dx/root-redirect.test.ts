import { Harness, startHarness } from "../support/harness";

/** A browser opening the server's address in development lands on GraphiQL; elsewhere `/` is unknown. */
describe("GET /", () => {
  let dev: Harness | undefined;
  let test: Harness | undefined;
  beforeAll(async () => {
    dev = await startHarness({ env: { NODE_ENV: "development" } });
    test = await startHarness();
  });
  afterAll(async () => {
    await dev?.close();
    await test?.close();
  });

  it("redirects to /graphiql in development", async () => {
    const r = await dev!.http.get("/");
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe("/graphiql");
  });

  it("is 404 outside development", async () => {
    expect((await test!.http.get("/")).status).toBe(404);
  });
});
