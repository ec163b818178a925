import { Writable } from "node:stream";
import { loadConfig } from "../../src/config";
import { createLogger } from "../../src/logger";
import { type RunningServer, startServer } from "../../src/server";
import { adminDatabaseUrl, API_KEY, REGISTER_CARD, GOOD_CARD, startHarness, uid, type Harness } from "../support/harness";
import { GraphQLClient } from "graphql-request";
import { createEndpoint, eventually, liveClient, startReceiver, subscribeEvents, type Receiver } from "./helpers";

/*
 * Two server instances on one PostgreSQL database, as replicas: both work the
 * delivery queue, yet each event reaches an endpoint once; and a live
 * subscription on instance A receives an event committed on instance B
 * (LISTEN/NOTIFY). The embedded database lives inside one process: PostgreSQL only.
 */

const admin = adminDatabaseUrl();
if (!admin) console.log("replica events test skipped: two instances need one shared PostgreSQL (set TEST_DATABASE_URL)");
const withPostgres = admin ? describe : describe.skip;

let a: Harness;
let b: RunningServer;
let clientB: GraphQLClient;
let receiver: Receiver;

withPostgres("events across two instances on one database", () => {
  beforeAll(async () => {
    a = await startHarness();
    const logger = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });
    const config = loadConfig({
      NODE_ENV: "test",
      PORT: "0",
      HOST: "127.0.0.1",
      API_KEYS: API_KEY,
      RECONCILE_INTERVAL_SECONDS: "0",
      IAMPORT_TIMEOUT_MS: "5000",
      DATABASE_URL: a.config.databaseUrl!,
    });
    b = await startServer(config, { logger, iamportUrl: a.emulator.url });
    clientB = new GraphQLClient(`${b.url}/graphql`, { headers: { authorization: `Bearer ${API_KEY}` } });
    receiver = await startReceiver();
  });

  afterAll(async () => {
    await receiver?.close();
    await b?.close();
    await a?.close();
  });

  it("deliver each event once to an endpoint, though both instances work the queue", async () => {
    await createEndpoint(a, receiver.url);
    const customers = Array.from({ length: 12 }, (_, i) => uid(`replica${i}`));
    // Recorded on both instances, at once.
    await Promise.all(
      customers.map((c, i) =>
        (i % 2 ? clientB : a.client).request(REGISTER_CARD, { input: { customerUid: c, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12" } }),
      ),
    );
    await eventually(
      () => a.sql<{ n: string }>(`select count(*) as n from event_deliveries where status = 'DELIVERED'`),
      (rows) => Number(rows[0].n) === customers.length,
    );
    const ids = receiver.received.map((r) => r.headers["webhook-id"]);
    expect(ids).toHaveLength(customers.length);
    expect(new Set(ids).size).toBe(customers.length);
    expect(new Set(receiver.received.map((r) => r.json.customerUid))).toEqual(new Set(customers));
    // Both instances took part (each worked the jobs it fetched): not asserted, it depends on timing.
  });

  it("bring an event committed on instance B to a live subscription on instance A", async () => {
    const client = liveClient(a.server.url, `Bearer ${API_KEY}`);
    try {
      const before = a.server.feed.subscriberCount;
      const customerUid = uid("crossed");
      const live = subscribeEvents(client, { customerUid });
      await eventually(
        async () => a.server.feed.subscriberCount,
        (n) => n > before,
      );
      await clientB.request(REGISTER_CARD, { input: { customerUid, cardNumber: GOOD_CARD, expiry: "2031-12", birth: "880101", pwd2digit: "12" } });
      expect(await live.next()).toMatchObject({ type: "card.registered", customerUid });
      live.dispose();
    } finally {
      await client.dispose();
    }
  });
});
