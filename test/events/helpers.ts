import { EventEmitter } from "node:events";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import type { Harness } from "../support/harness";

export interface Received {
  headers: Record<string, string>;
  body: string;
  /** The parsed body. */
  json: { id: string; type: string; customerUid: string | null; data: Record<string, unknown> };
}

/** What the receiver answers to the n-th request (0-based): a status, or "hang" (never answers). */
export type Behaviour = (n: number, r: Received) => number | "hang";

/** A merchant's webhook endpoint on a random port: records every request and answers as told. */
export interface Receiver {
  url: string;
  received: Received[];
  behaviour: Behaviour;
  /** Requests held unanswered ("hang") whose sender is still waiting (its connection open). */
  open(): number;
  /** Resolves once `predicate` holds for what was received (checked at every arrival); rejects after `timeoutMs`. */
  waitFor(predicate: (received: Received[]) => boolean, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(behaviour: Behaviour = () => 200): Promise<Receiver> {
  const arrivals = new EventEmitter();
  const sockets = new Set<Socket>();
  let held = 0;
  const receiver: Receiver = {
    url: "",
    received: [],
    behaviour,
    open: () => held,
    waitFor(predicate, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate(receiver.received)) return false;
          clearTimeout(timer);
          arrivals.off("arrival", check);
          resolve(receiver.received);
          return true;
        };
        const timer = setTimeout(() => {
          arrivals.off("arrival", check);
          reject(new Error(`receiver: condition not met within ${timeoutMs} ms; received ${JSON.stringify(receiver.received.map((r) => [r.json.type, r.headers["webhook-id"]]))}`));
        }, timeoutMs);
        if (!check()) arrivals.on("arrival", check);
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      const r: Received = { headers, body, json: JSON.parse(body) };
      const n = receiver.received.length;
      receiver.received.push(r);
      const answer = receiver.behaviour(n, r);
      if (answer !== "hang") res.writeHead(answer, { "content-type": "text/plain" }).end(answer >= 300 ? "not now" : "ok");
      else {
        held++;
        res.once("close", () => held--);
      }
      arrivals.emit("arrival");
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  return receiver;
}

export const CREATE_ENDPOINT = /* GraphQL */ `
  mutation Create($url: String!, $eventTypes: [String!]) {
    createWebhookEndpoint(url: $url, eventTypes: $eventTypes) { secret endpoint { id url eventTypes enabled createdAt } }
  }
`;

export const DELIVERIES = /* GraphQL */ `
  query Deliveries($eventId: ID!) {
    eventDeliveries(eventId: $eventId) { id eventId endpointId attempts status lastStatusCode lastError nextAttemptAt deliveredAt }
  }
`;

export interface Delivery {
  id: string;
  eventId: string;
  endpointId: string;
  attempts: number;
  status: string;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
}

export async function createEndpoint(h: Harness, url: string, eventTypes?: string[]): Promise<{ id: string; secret: string }> {
  const r = await h.client.request<{ createWebhookEndpoint: { secret: string; endpoint: { id: string } } }>(CREATE_ENDPOINT, { url, eventTypes });
  return { id: r.createWebhookEndpoint.endpoint.id, secret: r.createWebhookEndpoint.secret };
}

export async function deliveriesOf(h: Harness, eventId: string): Promise<Delivery[]> {
  return (await h.client.request<{ eventDeliveries: Delivery[] }>(DELIVERIES, { eventId })).eventDeliveries;
}

/** Asks again until `check` holds for the answer (a state the server reaches by itself); fails after `timeoutMs`. */
export async function eventually<T>(ask: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await ask();
    if (check(v)) return v;
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A graphql-ws client on the server's /graphql with these credentials. */
export function liveClient(serverUrl: string, authorization: string | undefined): Client {
  return createClient({
    url: `${serverUrl.replace(/^http/, "ws")}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: authorization ? { authorization } : {},
    retryAttempts: 0,
    lazy: true,
  });
}

export interface LiveEvent {
  id: string;
  type: string;
  customerUid: string | null;
  data: Record<string, unknown>;
}

/**
 * Subscribes to Live.events; `next()` resolves with the next event, or
 * rejects with the subscription's error. `ready` resolves once the server has
 * the subscription (the first `probe` event recorded afterwards reaches it).
 */
export function subscribeEvents(client: Client, variables: { types?: string[]; customerUid?: string }) {
  const queue: LiveEvent[] = [];
  const waiters: { resolve: (e: LiveEvent) => void; reject: (err: unknown) => void }[] = [];
  let failure: unknown;
  const dispose = client.subscribe<{ events: LiveEvent }>(
    { query: `subscription Live($types: [String!], $customerUid: String) { events(types: $types, customerUid: $customerUid) { id type customerUid data } }`, variables },
    {
      next: (msg) => {
        if (msg.errors) {
          failure = msg.errors;
          for (const w of waiters.splice(0)) w.reject(msg.errors);
          return;
        }
        const e = msg.data!.events;
        const w = waiters.shift();
        if (w) w.resolve(e);
        else queue.push(e);
      },
      error: (err) => {
        failure = err;
        for (const w of waiters.splice(0)) w.reject(err);
      },
      complete: () => undefined,
    },
  );
  return {
    next(timeoutMs = 30_000): Promise<LiveEvent> {
      if (queue.length) return Promise.resolve(queue.shift()!);
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no live event within the time allowed")), timeoutMs);
        waiters.push({
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        });
      });
    },
    dispose,
  };
}
