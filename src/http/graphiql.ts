import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Route } from "./routes";

/**
 * GraphiQL at /graphiql, served entirely from this server: graphiql 3's UMD build and
 * React 18's UMD builds straight from node_modules, no CDN (machines without internet
 * access get a working IDE). No inline script: the page loads /graphiql/init.js, and its
 * settings travel in a JSON data block, so the page works under `script-src 'self'`.
 */

export interface GraphiqlOptions {
  /** Serve GraphiQL at all (off: /graphiql falls through to the 404 handler). */
  enabled: boolean;
  /**
   * Merchant API key prefilled in the headers editor (development only). It is shown only to
   * browsers on this machine (loopback, not through a proxy), and never when it is a sha256: digest.
   */
  apiKey?: string;
  /** Send `/` to GraphiQL (development: a browser opening the server's address lands on the explorer). */
  rootRedirect?: boolean;
  /** Where the page sends operations; default /graphql. */
  endpoint?: string;
}

export const GRAPHIQL_PATH = "/graphiql";

/** The example customer of the prefilled operations. */
export const EXAMPLE_CUSTOMER_UID = "cust_graphiql";
/** The emulator's test card that charges normally. */
export const EXAMPLE_CARD_NUMBER = "4242-4242-4242-4242";

export interface ExampleTab {
  query: string;
  variables: string;
}

/** The main flows, one tab each (GraphiQL names a tab after its operation). */
export function exampleTabs(now = new Date()): ExampleTab[] {
  const expiry = `${now.getUTCFullYear() + 5}-12`;
  const json = (v: unknown) => JSON.stringify(v, null, 2);
  return [
    {
      query: `# The main flows, one tab each: run them in
# order with ▶ (or Ctrl-Enter). The book icon on
# the left documents every type and field.
#
# 1. Register a card: Iamport issues a billing key
# (the card number goes to Iamport, nowhere else).
# Emulator test cards: ${EXAMPLE_CARD_NUMBER} pays,
# 4000-0000-0000-0002 is declined. Once the
# customer has an active card, registering again
# is CONFLICT: add "replace": true to the input
# to replace it.
mutation RegisterCard($input: RegisterCardInput!) {
  registerCard(input: $input) {
    customerUid
    cardName
    cardNumberMasked
    status
  }
}
`,
      variables: json({
        input: { customerUid: EXAMPLE_CUSTOMER_UID, cardNumber: EXAMPLE_CARD_NUMBER, expiry, birth: "900101", pwd2digit: "12" },
      }),
    },
    {
      query: `# 2. Charge the registered card now. A declined
# card is a payment with status FAILED and a
# failReason, not an error.
mutation ChargeAgain($input: ChargeAgainInput!) {
  chargeAgain(input: $input) {
    merchantUid
    impUid
    status
    amount
    paidAmount
    failReason
    paidAt
  }
}
`,
      variables: json({ input: { customerUid: EXAMPLE_CUSTOMER_UID, amount: 8900, name: "Pro plan" } }),
    },
    {
      query: `# 3. Start a monthly subscription: the first
# period is charged at once, the next one is
# scheduled with Iamport.
mutation StartSubscription($input: StartSubscriptionInput!) {
  startSubscription(input: $input) {
    id
    status
    statusReason
    currentPeriodStart
    currentPeriodEnd
    nextPaymentAt
  }
}
`,
      variables: json({ input: { customerUid: EXAMPLE_CUSTOMER_UID, name: "Pro monthly", amount: 9900, interval: "MONTH" } }),
    },
    {
      query: `# 4. The customer's payments, newest first.
# Next page: pass pageInfo.endCursor as "after".
query Payments($customerUid: String, $first: Int, $after: String) {
  payments(customerUid: $customerUid, first: $first, after: $after) {
    nodes {
      merchantUid
      name
      status
      amount
      paidAmount
      failReason
      paidAt
      scheduledAt
      subscription {
        id
        status
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
`,
      variables: json({ customerUid: EXAMPLE_CUSTOMER_UID, first: 10 }),
    },
    {
      query: `# 5. Live updates: run this, then ChargeAgain in
# its tab; payment.paid appears here as it is
# committed (over graphql-ws on /graphql, with
# the Headers tab's Authorization as its
# connectionParams). Stop it with the ■ button.
subscription LiveEvents($customerUid: String, $types: [String!]) {
  events(customerUid: $customerUid, types: $types) {
    id
    type
    customerUid
    subscriptionId
    merchantUid
    createdAt
    data
  }
}
`,
      variables: json({ customerUid: EXAMPLE_CUSTOMER_UID }),
    },
  ];
}

/** Files served under /graphiql/assets/, resolved from the installed packages. */
function assetFiles(): Record<string, { file: string; type: string }> {
  const dir = (pkg: string) => path.dirname(require.resolve(`${pkg}/package.json`));
  const graphiql = dir("graphiql");
  const react = dir("react");
  const reactDom = dir("react-dom");
  const files = {
    "graphiql.min.js": { file: path.join(graphiql, "graphiql.min.js"), type: "application/javascript; charset=utf-8" },
    "graphiql.min.css": { file: path.join(graphiql, "graphiql.min.css"), type: "text/css; charset=utf-8" },
    "react.production.min.js": { file: path.join(react, "umd/react.production.min.js"), type: "application/javascript; charset=utf-8" },
    "react-dom.production.min.js": { file: path.join(reactDom, "umd/react-dom.production.min.js"), type: "application/javascript; charset=utf-8" },
  };
  for (const [name, { file }] of Object.entries(files)) {
    if (!fs.existsSync(file)) throw new Error(`GraphiQL asset ${name} is missing (${file}): reinstall graphiql@3, react@18 and react-dom@18`);
  }
  return files;
}

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // GraphiQL's components set style attributes; its fonts are data: URIs in graphiql.min.css.
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self' data:",
  "img-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE_CSS = `html, body { height: 100%; margin: 0; }
#graphiql { height: 100vh; }
.graphiql-boot { font: 14px/1.5 system-ui, sans-serif; padding: 2rem; color: #333; }
`;

/** Runs in the browser: reads the JSON settings block and renders GraphiQL (React and GraphiQL are UMD globals). */
const INIT_JS = `(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  function fail(message) {
    root.innerHTML = "";
    var p = document.createElement("p");
    p.className = "graphiql-boot";
    p.textContent = message;
    root.appendChild(p);
  }
  if (typeof window.GraphiQL !== "function" || !window.React || !window.ReactDOM) {
    fail("GraphiQL could not load its scripts from ${GRAPHIQL_PATH}/assets/.");
    return;
  }
  var settings = JSON.parse(document.getElementById("graphiql-settings").textContent);
  var httpUrl = new URL(settings.endpoint, window.location.href);
  var wsUrl = new URL(httpUrl.toString());
  wsUrl.protocol = httpUrl.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = window.GraphiQL.createFetcher({
    url: httpUrl.toString(),
    // Subscriptions (Live) go over graphql-ws on the same path. GraphiQL opens a socket per
    // subscription with the Headers tab's headers as its connectionParams, where the server
    // reads Authorization: the same key as over HTTP.
    subscriptionUrl: wsUrl.toString(),
    enableIncrementalDelivery: false
  });
  // First visit (no tabs saved in this browser): the example tabs. GraphiQL 3 fills the editors
  // from the query/variables props, not from the first default tab, so pass that tab's too.
  var saved = null;
  try {
    saved = window.localStorage.getItem("graphiql:tabState");
  } catch (e) {
    saved = null;
  }
  var props = {
    fetcher: fetcher,
    defaultTabs: settings.tabs,
    defaultQuery: settings.tabs[0].query,
    defaultHeaders: settings.headers,
    shouldPersistHeaders: false,
    isHeadersEditorEnabled: true,
    defaultEditorToolsVisibility: "variables"
  };
  if (!saved) {
    props.query = settings.tabs[0].query;
    props.variables = settings.tabs[0].variables;
  }
  window.ReactDOM.createRoot(root).render(window.React.createElement(window.GraphiQL, props));
})();
`;

function escapeJsonForHtml(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026");
}

/** A request straight from this machine: loopback peer, no proxy in between. */
function fromLoopback(req: FastifyRequest): boolean {
  if (req.headers["x-forwarded-for"] || req.headers["forwarded"] || req.headers["x-real-ip"]) return false;
  const isLoopback = (addr: string | undefined) => {
    if (!addr) return false;
    const a = addr.startsWith("::ffff:") ? addr.slice(7) : addr;
    return a === "::1" || (net.isIPv4(a) && a.startsWith("127."));
  };
  return isLoopback(req.socket.remoteAddress) && isLoopback(req.ip);
}

function page(settings: { endpoint: string; headers: string; tabs: ExampleTab[] }): string {
  const asset = (name: string) => `${GRAPHIQL_PATH}/assets/${name}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>GraphiQL · iamport billing server</title>
<link rel="stylesheet" href="${asset("graphiql.min.css")}">
<link rel="stylesheet" href="${asset("page.css")}">
</head>
<body>
<div id="graphiql"><p class="graphiql-boot">Loading GraphiQL…</p><noscript><p class="graphiql-boot">GraphiQL needs JavaScript.</p></noscript></div>
<script id="graphiql-settings" type="application/json">${escapeJsonForHtml(settings)}</script>
<script src="${asset("react.production.min.js")}"></script>
<script src="${asset("react-dom.production.min.js")}"></script>
<script src="${asset("graphiql.min.js")}"></script>
<script src="${GRAPHIQL_PATH}/init.js"></script>
</body>
</html>
`;
}

/** The routes of GraphiQL at /graphiql (none when disabled: the paths are then unknown, 404). */
export function graphiqlRoutes(opts: GraphiqlOptions): Route[] {
  if (!opts.enabled) return [];
  const files = assetFiles();
  const endpoint = opts.endpoint ?? "/graphql";
  // A sha256: entry is a digest, not a key anyone could send.
  const prefill = opts.apiKey && !opts.apiKey.startsWith("sha256:") ? opts.apiKey : undefined;
  const headersFor = (key: string) => JSON.stringify({ Authorization: `Bearer ${key}` }, null, 2);
  const etag = (body: string) => `"${crypto.createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;

  const send = (reply: FastifyReply, type: string, body: string, cache: string) =>
    reply.header("Content-Security-Policy", CSP).header("Cache-Control", cache).header("ETag", etag(body)).type(type).send(body);

  return [
    ...(opts.rootRedirect ? [{ method: "GET", url: "/", handler: async (_req, reply) => reply.redirect(GRAPHIQL_PATH, 302) } satisfies Route] : []),
    {
      method: "GET",
      url: GRAPHIQL_PATH,
      handler: async (req, reply) => {
        const headers = prefill && fromLoopback(req) ? headersFor(prefill) : headersFor("<one of API_KEYS>");
        reply.header("Referrer-Policy", "no-referrer");
        // no-store: the page may carry the development key.
        return send(reply, "text/html; charset=utf-8", page({ endpoint, headers, tabs: exampleTabs() }), "no-store");
      },
    },
    { method: "GET", url: `${GRAPHIQL_PATH}/init.js`, handler: async (_req, reply) => send(reply, "application/javascript; charset=utf-8", INIT_JS, "no-cache") },
    { method: "GET", url: `${GRAPHIQL_PATH}/assets/page.css`, handler: async (_req, reply) => send(reply, "text/css; charset=utf-8", PAGE_CSS, "no-cache") },
    {
      method: "GET",
      url: `${GRAPHIQL_PATH}/assets/:name`,
      handler: async (req, reply) => {
        const name = (req.params as { name: string }).name;
        const asset = Object.hasOwn(files, name) ? files[name as keyof typeof files] : undefined;
        if (!asset) return reply.callNotFound();
        return reply
          .header("Content-Security-Policy", CSP)
          .header("Cache-Control", "public, max-age=86400")
          .type(asset.type)
          .send(fs.createReadStream(asset.file));
      },
    },
  ];
}
