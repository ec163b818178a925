import type { MikroORM } from "@mikro-orm/postgresql";
import { Client } from "pg";
import type { Logger } from "pino";
import { query } from "../db/tx";
import { EVENTS_CHANNEL } from "./types";
import { type EventRow, type EventView, eventView } from "./views";

const EVENT_COLUMNS = `"id"::text as "id", "type", "customer_uid", "subscription_id", "merchant_uid", "data", "created_at"`;

/** What a live subscriber receives: all events, or those of some types and/or one customer. */
export interface LiveFilter {
  types?: string[] | null;
  customerUid?: string | null;
}

/** The most events a slow subscriber may have waiting; past it, the subscription ends (the client subscribes again). */
const MAX_BACKLOG = 1000;

/**
 * The events committed on the database, as this process learns of them:
 * through PostgreSQL LISTEN/NOTIFY on PostgreSQL (every process hears every
 * other's events, on a connection of its own), or, on the embedded database,
 * by reading the events table after the last one seen: the embedded database
 * serves one connection, so no second one can LISTEN, and only this process
 * writes to it. Each event is read once per process, whatever the number of
 * subscribers, and `onRecorded` is told (the delivery worker queues its
 * deliveries).
 */
export class EventFeed {
  /** Each subscriber's push, with the function that ends its iterator. */
  private readonly subscribers = new Map<(e: EventView) => void, () => void>();
  private listener?: Client;
  private pollTimer?: NodeJS.Timeout;
  private reconnectTimer?: NodeJS.Timeout;
  private stopped = false;
  private pendingIds: string[] = [];
  private loading?: Promise<void>;
  private lastSeen = "0";
  private polling?: Promise<void>;

  constructor(
    private readonly orm: MikroORM,
    private readonly opts: { databaseUrl?: string; logger: Logger; onRecorded?: () => void; pollMs?: number },
  ) {}

  /**
   * Listens (PostgreSQL) or starts reading after the newest event (embedded).
   * A server that refuses the listening connection (a database that serves
   * one connection, such as PGlite behind its socket, or a pooler in
   * transaction mode, which cannot LISTEN) gets the reading instead, with a
   * warning: live updates arrive all the same, a poll interval later.
   */
  async start(): Promise<void> {
    if (this.opts.databaseUrl) {
      try {
        await this.listen();
        return;
      } catch (err) {
        this.opts.logger.warn(
          { err: (err as Error).message, pollMs: this.opts.pollMs ?? 250 },
          "cannot LISTEN on this database: live updates read the events table instead",
        );
      }
    }
    const [row] = await query<{ id: string | null }>({ em: this.orm.em }, `select max("id")::text as "id" from "events"`, []);
    this.lastSeen = row?.id ?? "0";
    const poll = () => {
      if (this.stopped) return;
      this.polling = this.pollOnce()
        .catch((err: Error) => this.opts.logger.debug({ err: err.message }, "could not read new events"))
        .finally(() => {
          if (!this.stopped) this.pollTimer = setTimeout(poll, this.opts.pollMs ?? 250);
        });
    };
    poll();
  }

  private async listen(): Promise<void> {
    const client = new Client({ connectionString: this.opts.databaseUrl });
    client.on("notification", (msg) => {
      if (msg.channel !== EVENTS_CHANNEL || !msg.payload) return;
      this.pendingIds.push(msg.payload);
      this.loadSoon();
    });
    client.on("error", (err) => {
      this.opts.logger.warn({ err: err.message }, "event listener connection lost; reconnecting");
      this.reconnect(client);
    });
    client.on("end", () => this.reconnect(client));
    try {
      await client.connect();
      await client.query(`listen ${EVENTS_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    this.listener = client;
  }

  private reconnect(old: Client): void {
    if (this.stopped || this.listener !== old || this.reconnectTimer) return;
    this.listener = undefined;
    old.end().catch(() => undefined);
    const attempt = (delayMs: number) => {
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = undefined;
        if (this.stopped) return;
        this.listen()
          // Deliveries recorded while no one listened are found by the worker's periodic look.
          .then(() => this.opts.onRecorded?.())
          .catch((err: Error) => {
            this.opts.logger.warn({ err: err.message }, "event listener could not reconnect");
            attempt(Math.min(delayMs * 2, 30_000));
          });
      }, delayMs);
      this.reconnectTimer.unref();
    };
    attempt(500);
  }

  /** Notifications that arrive together are read in one query. */
  private loadSoon(): void {
    if (this.loading) return;
    this.loading = new Promise<void>((resolve) => setImmediate(resolve))
      .then(async () => {
        while (this.pendingIds.length > 0 && !this.stopped) {
          const ids = this.pendingIds.splice(0, 500);
          // With no one subscribed there is nothing to read: the delivery worker only needs to hear of them.
          if (this.subscribers.size === 0) {
            this.opts.onRecorded?.();
            continue;
          }
          const rows = await query<EventRow>({ em: this.orm.em }, `select ${EVENT_COLUMNS} from "events" where "id" = any(?::bigint[]) order by "events"."id"`, [ids]);
          this.publish(rows);
        }
      })
      .catch((err: Error) => this.opts.logger.warn({ err: err.message }, "could not read notified events"))
      .finally(() => {
        this.loading = undefined;
        if (this.pendingIds.length > 0) this.loadSoon();
      });
  }

  private async pollOnce(): Promise<void> {
    // With no one subscribed, only whether events were recorded matters (for the delivery worker), not what they hold.
    if (this.subscribers.size === 0) {
      const [newest] = await query<{ id: string | null }>({ em: this.orm.em }, `select max("id")::text as "id" from "events" where "id" > ?::bigint`, [this.lastSeen]);
      if (!newest?.id) return;
      this.lastSeen = newest.id;
      this.opts.onRecorded?.();
      return;
    }
    const rows = await query<EventRow>({ em: this.orm.em }, `select ${EVENT_COLUMNS} from "events" where "id" > ?::bigint order by "events"."id" limit 500`, [this.lastSeen]);
    if (rows.length === 0) return;
    this.lastSeen = rows[rows.length - 1].id;
    this.publish(rows);
  }

  private publish(rows: EventRow[]): void {
    if (rows.length === 0) return;
    this.opts.onRecorded?.();
    for (const r of rows) {
      const view = eventView(r);
      for (const s of this.subscribers.keys()) s(view);
    }
  }

  /** The events that pass `filter`, from now on, until the iterator is returned. */
  subscribe(filter: LiveFilter): AsyncIterableIterator<EventView> {
    const types = filter.types && filter.types.length > 0 ? new Set(filter.types) : null;
    const queue: EventView[] = [];
    let wake: ((r: IteratorResult<EventView>) => void) | undefined;
    let done = false;
    const finish = () => {
      done = true;
      this.subscribers.delete(push);
      wake?.({ value: undefined, done: true });
      wake = undefined;
    };
    const push = (e: EventView) => {
      if (types && !types.has(e.type)) return;
      if (filter.customerUid && e.customerUid !== filter.customerUid) return;
      if (wake) {
        const w = wake;
        wake = undefined;
        w({ value: e, done: false });
      } else if (queue.length < MAX_BACKLOG) queue.push(e);
      else finish();
    };
    this.subscribers.set(push, finish);
    const iterator: AsyncIterableIterator<EventView> = {
      next: () => {
        if (queue.length > 0) return Promise.resolve({ value: queue.shift()!, done: false });
        if (done || this.stopped) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (wake = resolve));
      },
      return: () => {
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const finish of [...this.subscribers.values()]) finish();
    await this.polling;
    await this.loading;
    const l = this.listener;
    this.listener = undefined;
    if (l) await l.end().catch(() => undefined);
  }
}
