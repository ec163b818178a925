/**
 * The limit of the GraphQL read benchmark: a raw node:http server that answers
 * the same two requests (same body in, same JSON out, same API-key check) with
 * one prepared `pg` query each (named per process: the embedded database is one
 * session, where prepared statements outlive connections), on the same database server. No framework, no
 * ORM, no GraphQL: what is left is the HTTP and PostgreSQL round trips.
 *
 * With READ_SERVER=apollo it is the framework's floor instead: the same
 * node:http handler, key check and queries, but the body is run by Apollo
 * Server and graphql-js (a schema written in SDL, two resolvers around the
 * same queries, Apollo's per-request plugins off as in the server). No
 * type-graphql, no ORM pool, no security headers, no metrics: what Apollo and
 * graphql-js cost on this machine, whatever the application does.
 *
 * Env: PORT, DATABASE_URL, DATABASE_POOL_MAX (10), API_KEY, READ_SERVER (raw | apollo).
 */
import http from "node:http";
import { ApolloServer, HeaderMap } from "@apollo/server";
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginLandingPageDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from "@apollo/server/plugin/disabled";
import { buildSchema } from "graphql";
import { Pool } from "pg";

const port = Number(process.env.PORT ?? 0);
const apiKey = process.env.API_KEY ?? "bench-key";
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 10) });
pool.on("error", (e) => console.error(`idle database connection lost: ${e.message}`));

const PAYMENT_COLUMNS =
  "merchant_uid, imp_uid, customer_uid, name, amount, paid_amount, cancelled_amount, currency, status, fail_reason, scheduled_at, paid_at, created_at, updated_at";

interface Row {
  id?: string;
  merchant_uid: string;
  imp_uid: string | null;
  customer_uid: string | null;
  name: string;
  amount: number;
  paid_amount: number | null;
  cancelled_amount: number;
  currency: string;
  status: string;
  fail_reason: string | null;
  scheduled_at: Date | null;
  paid_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function present(r: Row) {
  return {
    merchantUid: r.merchant_uid,
    impUid: r.imp_uid,
    customerUid: r.customer_uid,
    name: r.name,
    amount: r.amount,
    paidAmount: r.paid_amount,
    cancelledAmount: r.cancelled_amount,
    currency: r.currency,
    status: r.status,
    failReason: r.fail_reason,
    scheduledAt: iso(r.scheduled_at),
    paidAt: iso(r.paid_at),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

async function paymentOf(merchantUid: string) {
  const r = await pool.query<Row>({ name: `payment_${process.pid}`, text: `select ${PAYMENT_COLUMNS} from payments where merchant_uid = $1`, values: [merchantUid] });
  return r.rows[0] ? present(r.rows[0]) : null;
}

async function paymentsOf(customerUid: string) {
  const r = await pool.query<Row>({
    name: `payments_${process.pid}`,
    text: `select id, ${PAYMENT_COLUMNS} from payments where customer_uid = $1 order by id desc limit 21`,
    values: [customerUid],
  });
  const rows = r.rows.slice(0, 20);
  const last = rows[rows.length - 1];
  return {
    nodes: rows.map(present),
    pageInfo: { hasNextPage: r.rows.length > 20, endCursor: last ? Buffer.from(`c:${last.id}`).toString("base64url") : null },
  };
}

async function answer(body: { variables?: { merchantUid?: string; customerUid?: string } }): Promise<unknown> {
  const v = body.variables ?? {};
  if (v.merchantUid !== undefined) return { data: { payment: await paymentOf(v.merchantUid) } };
  if (v.customerUid !== undefined) return { data: { payments: await paymentsOf(v.customerUid) } };
  return { errors: [{ message: "unknown operation" }] };
}

/** The floor: the same two lookups behind Apollo Server and graphql-js (READ_SERVER=apollo). */
function apolloFloor(): ApolloServer {
  const schema = buildSchema(`
    type Payment {
      merchantUid: String! impUid: String customerUid: String name: String! amount: Int! paidAmount: Int
      cancelledAmount: Int! currency: String! status: String! failReason: String
      scheduledAt: String paidAt: String createdAt: String! updatedAt: String!
    }
    type PageInfo { hasNextPage: Boolean! endCursor: String }
    type PaymentConnection { nodes: [Payment!]! pageInfo: PageInfo! }
    type Query { payment(merchantUid: String!): Payment payments(customerUid: String!, first: Int): PaymentConnection! }
  `);
  return new ApolloServer({
    schema,
    rootValue: {
      payment: (args: { merchantUid: string }) => paymentOf(args.merchantUid),
      payments: (args: { customerUid: string }) => paymentsOf(args.customerUid),
    },
    allowBatchedHttpRequests: false,
    persistedQueries: false,
    plugins: [
      ApolloServerPluginLandingPageDisabled(),
      ApolloServerPluginCacheControlDisabled(),
      ApolloServerPluginInlineTraceDisabled(),
      ApolloServerPluginUsageReportingDisabled(),
    ],
  });
}

const apollo = process.env.READ_SERVER === "apollo" ? apolloFloor() : null;

const server = http.createServer((req, res) => {
  const send = (status: number, value: unknown) => {
    const out = JSON.stringify(value);
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(out) }).end(out);
  };
  if (req.method === "GET" && req.url === "/healthz") return send(200, { status: "ok" });
  if (req.method !== "POST" || req.url !== "/graphql") return send(404, { error: "no such route" });
  if (req.headers.authorization !== `Bearer ${apiKey}`) return send(401, { errors: [{ message: "unauthenticated" }] });
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    let body: Parameters<typeof answer>[0];
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return send(400, { errors: [{ message: "bad JSON" }] });
    }
    if (apollo) {
      const headers = new HeaderMap();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest: { method: "POST", headers, search: "", body }, context: async () => ({}) }).then(
        (r) => {
          if (r.body.kind !== "complete") return send(500, { errors: [{ message: "incremental delivery is not served here" }] });
          for (const [k, v] of r.headers) res.setHeader(k, v);
          res.writeHead(r.status ?? 200, { "content-length": Buffer.byteLength(r.body.string) }).end(r.body.string);
        },
        (e: unknown) => send(500, { errors: [{ message: (e as Error).message }] }),
      );
      return;
    }
    answer(body).then(
      (out) => send(200, out),
      (e: unknown) => send(500, { errors: [{ message: (e as Error).message }] }),
    );
  });
});
server.keepAliveTimeout = 65_000;
void (apollo?.start() ?? Promise.resolve()).then(() =>
  server.listen(port, "127.0.0.1", () => console.log(`READY ${JSON.stringify({ port: (server.address() as { port: number }).port })}`)),
);

const stop = () => {
  server.close();
  server.closeAllConnections();
  void pool.end().finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
