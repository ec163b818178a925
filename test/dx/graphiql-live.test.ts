/**
 * GraphiQL's live example without a browser: the page's own init.js, as served, run in a VM
 * sandbox standing in for the page (React and ReactDOM reduced to recording what they are given),
 * with GraphiQL's real fetcher factory (@graphiql/toolkit, which graphiql.min.js bundles). The
 * fetcher it builds runs the LiveEvents tab over graphql-ws against the server, with the Headers
 * tab's prefilled key as connectionParams, and receives a card registration as it is committed.
 * (test/dx/graphiql.test.ts drives the page itself in Chromium.)
 */
import vm from "node:vm";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { parse } from "graphql";
import WebSocket from "ws";
import { registerCard, startHarness, uid, type Harness } from "../support/harness";
import { waitFor } from "../subscriptions/helpers";

type Fetcher = (params: { query: string; variables?: Record<string, unknown>; operationName?: string }, opts?: { headers?: Record<string, unknown>; documentAST?: unknown }) => Promise<unknown>;

let h: Harness;
const hadWebSocket = "WebSocket" in globalThis;

beforeAll(async () => {
  h = await startHarness();
  // A browser has WebSocket; Node 20 has not (graphql-ws, inside GraphiQL's fetcher, takes the global one).
  if (!hadWebSocket) (globalThis as Record<string, unknown>).WebSocket = WebSocket;
});

afterAll(async () => {
  if (!hadWebSocket) delete (globalThis as Record<string, unknown>).WebSocket;
  await h?.close();
});

/** Loads /graphiql and runs its init.js as the browser would; returns the props GraphiQL is rendered with and the settings. */
async function renderPage(): Promise<{ props: { fetcher: Fetcher; defaultTabs: { query: string; variables: string }[] }; headers: Record<string, unknown> }> {
  const html = (await h.http.get("/graphiql")).data as string;
  const settingsText = /<script id="graphiql-settings" type="application\/json">([^<]*)<\/script>/.exec(html)![1];
  const init = (await h.http.get("/graphiql/init.js")).data as string;
  let rendered: { props: never } | undefined;
  const GraphiQL = Object.assign(() => null, {
    // What the page's fetcher options reach in the bundle; only fetch comes from the window there.
    createFetcher: (options: Parameters<typeof createGraphiQLFetcher>[0]) => createGraphiQLFetcher({ ...options, fetch }),
  });
  const root = { innerHTML: "", appendChild: () => undefined };
  const window = {
    GraphiQL,
    React: { createElement: (type: unknown, props: never) => ({ type, props }) },
    ReactDOM: { createRoot: () => ({ render: (el: { props: never }) => (rendered = el) }) },
    location: { href: `${h.server.url}/graphiql` },
    localStorage: { getItem: () => null },
  };
  const document = {
    getElementById: (id: string) => (id === "graphiql-settings" ? { textContent: settingsText } : root),
    createElement: () => ({}),
  };
  vm.runInNewContext(init, { window, document, URL, JSON });
  if (!rendered) throw new Error(`init.js rendered nothing: ${root.innerHTML}`);
  const settings = JSON.parse(settingsText) as { headers: string };
  return { props: rendered.props, headers: JSON.parse(settings.headers) };
}

describe("GraphiQL's live example", () => {
  it("runs the LiveEvents tab over graphql-ws with the Headers tab's key, and shows a card registered meanwhile", async () => {
    const { props, headers } = await renderPage();
    // The development key (here the first API key) is prefilled for this loopback browser.
    expect(headers).toEqual({ Authorization: expect.stringMatching(/^Bearer /) });
    const tab = props.defaultTabs.find((t) => t.query.includes("subscription LiveEvents"));
    expect(tab).toBeDefined();
    const customerUid = uid("graphiql-live");

    const before = h.server.feed.subscriberCount;
    const results = (await props.fetcher(
      { query: tab!.query, variables: { ...JSON.parse(tab!.variables), customerUid }, operationName: "LiveEvents" },
      { headers, documentAST: parse(tab!.query) },
    )) as AsyncIterableIterator<{ data?: { events: { type: string; customerUid: string; data: Record<string, unknown> } }; errors?: unknown[] }>;
    const first = results.next();
    try {
      await waitFor(async () => h.server.feed.subscriberCount > before, 30_000);
      await registerCard(h, customerUid);
      const { value } = await first;
      expect(value.errors).toBeUndefined();
      expect(value.data?.events).toMatchObject({ type: "card.registered", customerUid, data: { customerUid, status: "ACTIVE" } });
    } finally {
      await results.return?.();
    }
  });
});
