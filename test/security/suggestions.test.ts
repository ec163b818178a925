import { Harness, startHarness } from "../support/harness";

/**
 * graphql-js answers a misspelt name with the names the schema has ("Did you
 * mean ...?"). With introspection off in production, those hints would still
 * map the schema, so production hides them; development and tests keep them.
 */
// Every row has its variables: jest passes a `done` callback in place of a parameter that a row lacks.
const MISSPELT: [string, string, Record<string, unknown>][] = [
  ["a field", `{ paymnt(merchantUid: "x") { merchantUid } }`, {}],
  ["an argument", `{ payment(merchantUd: "x") { merchantUid } }`, {}],
  ["a type", `query($f: PaymentFiltr) { payments { nodes { merchantUid } } }`, {}],
  ["an enum value", `{ payments(status: PAIDD) { nodes { merchantUid } } }`, {}],
  ["an enum value in a variable", `query($s: PaymentStatus) { payments(status: $s) { nodes { merchantUid } } }`, { s: "PAIDD" }],
];

describe.each([
  ["production", true],
  ["test", false],
])("field suggestions with NODE_ENV=%s", (env, hidden) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      env: {
        NODE_ENV: env,
        // Production refuses to start without these; nothing here reaches Iamport.
        IAMPORT_API_KEY: "imp_key",
        IAMPORT_API_SECRET: "imp_secret",
        CUSTOMER_TOKEN_SECRET: "suggestions-test-secret-0123456789abcdef",
      },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it.each(MISSPELT)(`${hidden ? "hides" : "keeps"} the suggestion for %s, and still says what is wrong`, async (_what, query, variables) => {
    const r = await h.gql(query, variables);
    expect(r.status).toBe(400);
    expect(r.errors?.length).toBeGreaterThan(0);
    const messages = r.errors!.map((e) => e.message).join(" | ");
    if (hidden) expect(messages).not.toMatch(/did you mean/i);
    else expect(messages).toMatch(/Did you mean/);
    // The mistake itself is still named: the misspelt name is in the message either way.
    expect(messages).toMatch(/paymnt|merchantUd|PaymentFiltr|PAIDD/);
    expect(r.errors![0].extensions?.code).toMatch(/^(GRAPHQL_VALIDATION_FAILED|BAD_USER_INPUT)$/);
  });
});
