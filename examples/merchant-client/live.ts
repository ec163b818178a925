/**
 * Live updates for a merchant backend: the server's `Live.events` subscription over graphql-ws
 * on /graphql, typed by the LiveEvents operation in ./operations.graphql (generated into
 * ./generated/graphql.ts by `npm run codegen`). The credential goes in connectionParams, as the
 * Authorization header goes with an HTTP request: a merchant key receives every event, a
 * customer token only its own customer's.
 *
 * Live updates are for screens and dashboards: a client that is not connected misses events.
 * For work that must happen once per event (notices, access), use the signed webhooks.
 */
import { print } from "graphql";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { LiveEventsDocument, type LiveEventsSubscription, type LiveEventsSubscriptionVariables } from "./generated/graphql";

export type LiveEvent = LiveEventsSubscription["events"];
export type LiveEventFilter = LiveEventsSubscriptionVariables;

export interface LiveEvents {
  /**
   * Calls `onEvent` with each event as it is committed (only `filter.types` and
   * `filter.customerUid`, when given). Returns a function that stops it.
   */
  subscribe(filter: LiveEventFilter, onEvent: (event: LiveEvent) => void, onError?: (err: unknown) => void): () => void;
  /** Closes the socket (and every subscription on it). */
  close(): Promise<void>;
}

const QUERY = print(LiveEventsDocument);

/**
 * @param url the server's GraphQL endpoint, e.g. http://localhost:4000/graphql (ws:// or wss:// is derived from it)
 * @param credential one of the server's API_KEYS, or a customer token
 */
export function createLiveEvents(url: string, credential: string): LiveEvents {
  const client: Client = createClient({
    url: url.replace(/^http/, "ws"),
    // Node 20 has no global WebSocket; in a browser, leave webSocketImpl out.
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${credential}` },
    // Reconnects after a dropped connection (a server restart, a deploy); events committed
    // while it was away are not replayed: read them with the `events` query.
    retryAttempts: 5,
  });
  return {
    subscribe(filter, onEvent, onError = (err) => console.error("live events:", err)) {
      return client.subscribe<LiveEventsSubscription>(
        { query: QUERY, variables: filter },
        {
          next: (msg) => {
            if (msg.errors?.length) onError(msg.errors);
            else if (msg.data) onEvent(msg.data.events);
          },
          error: onError,
          complete: () => undefined,
        },
      );
    },
    close: () => client.dispose() as Promise<void>,
  };
}
