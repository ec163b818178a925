import { startHarness, type Harness } from "../support/harness";

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

// Runs on PostgreSQL and on the embedded database (whichever the suite runs on).
describe("migrations", () => {
  it("leave the database as the entities describe it (nothing for the schema generator to change)", async () => {
    const diff = await h.server.orm.getSchemaGenerator().getUpdateSchemaSQL({ wrap: false });
    // rate_limits, idempotency_keys and card_claims are plain SQL without an entity (src/db/repositories/rate-limits.ts,
    // src/db/repositories/idempotency-keys.ts, src/db/repositories/card-claims.ts): the generator would drop them.
    const plain = ["rate_limits", "idempotency_keys", "card_claims"].map((t) => `drop table if exists "${t}" cascade;`);
    const changes = diff
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !plain.includes(l));
    expect(changes).toEqual([]);
  });

  it("index only the webhook events still unprocessed, which reconciliation looks for", async () => {
    const [idx] = await h.sql<{ indexdef: string }>(
      `select indexdef from pg_indexes where tablename = 'webhook_events' and indexname = 'webhook_events_unprocessed_index'`,
    );
    expect(idx.indexdef).toMatch(/\(received_at\) WHERE \(processed_at IS NULL\)/);
  });
});
