import { mintCustomerToken } from "../../src/security/customer-token";
import { Harness, REGISTER_CARD, startHarness, uid } from "../support/harness";

/**
 * The card-data rule on the paths the security work added: customer tokens
 * (own and another customer's), rate-limited calls, refused credentials,
 * oversized and malformed bodies, card data written into the query text.
 * Afterwards no log line and no table holds the card number, expiry, birth or
 * password.
 */
const SECRET = "card-paths-secret-0123456789abcdefghijklmnop";
const CARD = "4916-3385-0608-2832";
const EXPIRY = "2036-04";
const BIRTH = "640218";
const PWD = "83";
const NEEDLES = [CARD, CARD.replace(/-/g, ""), CARD.replace(/-/g, " "), EXPIRY, "203604", BIRTH];

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { CUSTOMER_TOKEN_SECRET: SECRET, RATE_LIMIT_PER_MINUTE: "6", BODY_LIMIT: "4kb" } });
});
afterAll(async () => {
  await h?.close();
});

const input = (customerUid: string, patch: Record<string, unknown> = {}) => ({
  input: { customerUid, cardNumber: CARD, expiry: EXPIRY, birth: BIRTH, pwd2digit: PWD, ...patch },
});

it("leaves no card data in logs, tables or answers after token, rate-limit and error paths", async () => {
  const answers: string[] = [];
  const own = uid("tok");
  const token = mintCustomerToken(SECRET, own, 300);
  const asCustomer = { authorization: `Bearer ${token}` };

  // A customer token registering its own card (allowed) and another customer's (FORBIDDEN).
  const mine = await h.gql(REGISTER_CARD, input(own), asCustomer);
  expect(mine.data).toMatchObject({ registerCard: { customerUid: own, status: "ACTIVE" } });
  const theirs = await h.gql(REGISTER_CARD, input(uid("other")), asCustomer);
  expect(theirs.errors?.[0].extensions?.code).toBe("FORBIDDEN");
  answers.push(JSON.stringify(mine), JSON.stringify(theirs));

  // Refused credentials carrying card data.
  for (const authorization of ["", "Bearer nope", `Bearer ${token}x`]) {
    const r = await h.http.post("/graphql", { query: REGISTER_CARD, variables: input(own) }, { headers: { authorization } });
    expect(r.status).toBe(401);
    answers.push(JSON.stringify(r.data));
  }

  // Card data written into the query text, with a type error and a syntax error.
  const literal = await h.gql(`mutation { registerCard(input: {customerUid: "${own}", cardNumber: ${CARD.replace(/-/g, "")}, expiry: "${EXPIRY}", birth: ${BIRTH}}) { status } }`, {}, asCustomer);
  expect(literal.errors?.length).toBeGreaterThan(0);
  const syntax = await h.http.post("/graphql", { query: `mutation { registerCard(input: {cardNumber: "${CARD}" expiry: "${EXPIRY}" birth: "${BIRTH}" ` }, { headers: asCustomer });
  expect(syntax.status).toBe(400);
  answers.push(JSON.stringify(literal), JSON.stringify(syntax.data));

  // Oversized and malformed bodies.
  const big = await h.http.post("/graphql", { query: REGISTER_CARD, variables: input(own, { customerName: "x".repeat(5000) }) }, { headers: asCustomer });
  expect(big.status).toBe(413);
  const broken = await h.http.post("/subscriptions/issue-billing", `{"card_number": "${CARD}", "expiry": "${EXPIRY}", "birth": "${BIRTH}"`, {
    headers: { "content-type": "application/json" },
  });
  expect(broken.status).toBe(400);
  answers.push(JSON.stringify(big.data), JSON.stringify(broken.data));

  // Until the per-caller limit answers RATE_LIMITED, with card data in every request.
  let limited: unknown;
  for (let i = 0; i < 12 && !limited; i++) {
    const r = await h.gql(REGISTER_CARD, input(own), asCustomer);
    if (r.status === 429) limited = r;
    answers.push(JSON.stringify(r));
  }
  expect(limited).toMatchObject({ errors: [{ extensions: { code: "RATE_LIMITED" } }] });

  const tables = await h.sql<{ name: string }>(
    `select table_schema || '.' || table_name as name from information_schema.tables where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`,
  );
  const rows: string[] = [];
  for (const t of tables) {
    const [schema, table] = t.name.split(".");
    for (const r of await h.sql<{ row: string }>(`select x::text as row from "${schema}"."${table}" x`)) rows.push(r.row);
  }
  expect(rows.some((r) => r.includes(own))).toBe(true);
  expect(h.logs.length).toBeGreaterThan(10);
  for (const needle of NEEDLES) {
    expect({ needle, where: "logs", found: h.logs.filter((l) => l.includes(needle)) }).toEqual({ needle, where: "logs", found: [] });
    expect({ needle, where: "tables", found: rows.filter((r) => r.includes(needle)) }).toEqual({ needle, where: "tables", found: [] });
    expect({ needle, where: "answers", found: answers.filter((a) => a.includes(needle)) }).toEqual({ needle, where: "answers", found: [] });
  }
  expect(h.logs.some((l) => l.includes(`"${PWD}"`))).toBe(false);
});
