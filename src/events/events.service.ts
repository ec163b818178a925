import crypto from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Logger } from "pino";
import { checkUid } from "../billing/validation";
import { checkFirst } from "../billing/payment.service";
import { decodeCursor, encodeCursor, type Page } from "../billing/pagination";
import type { EventsConfig } from "../config";
import { query } from "../db/tx";
import { BadUserInputError, NotFoundError } from "../errors";
import { newSecret } from "./signing";
import { checkEndpointUrl } from "./ssrf";
import { isEventType } from "./types";
import { type EventRow, type EventView, eventRowId, eventView, eventId } from "./views";

/** How long a rotated secret keeps signing beside the new one. */
export const SECRET_OVERLAP_HOURS = 24;
/** Endpoints a merchant may have: each event is one delivery row per endpoint. */
const MAX_ENDPOINTS = 20;

export interface EventFilter {
  type?: string | null;
  customerUid?: string | null;
  subscriptionId?: string | null;
}

export interface EndpointView {
  id: string;
  url: string;
  eventTypes: string[];
  enabled: boolean;
  createdAt: Date;
}

export interface DeliveryView {
  id: string;
  eventId: string;
  endpointId: string;
  attempts: number;
  status: string;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
}

interface EndpointRow {
  id: string;
  url: string;
  event_types: string[];
  enabled: boolean;
  created_at: Date | string;
}

interface DeliveryRow {
  id: string;
  event_id: string;
  endpoint_id: string;
  attempts: number;
  status: string;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: Date | string | null;
  delivered_at: Date | string | null;
}

const EVENT_COLUMNS = `"id"::text as "id", "type", "customer_uid", "subscription_id", "merchant_uid", "data", "created_at"`;
const ENDPOINT_COLUMNS = `"id", "url", "event_types", "enabled", "created_at"`;
const DELIVERY_COLUMNS = `"id", "event_id"::text as "event_id", "endpoint_id", "attempts", "status", "last_status_code", "last_error", "next_attempt_at", "delivered_at"`;

/** Timestamps come from plain SQL as the driver returns them (text, as the ORM configures it). */
function asDate(v: Date | string | null): Date | null {
  return v === null ? null : v instanceof Date ? v : new Date(v);
}

function endpointView(r: EndpointRow): EndpointView {
  return { id: r.id, url: r.url, eventTypes: r.event_types, enabled: r.enabled, createdAt: asDate(r.created_at)! };
}

function deliveryView(r: DeliveryRow): DeliveryView {
  return {
    id: r.id,
    eventId: eventId(r.event_id),
    endpointId: r.endpoint_id,
    attempts: r.attempts,
    status: r.status,
    lastStatusCode: r.last_status_code,
    lastError: r.last_error,
    nextAttemptAt: r.status === "PENDING" ? asDate(r.next_attempt_at) : null,
    deliveredAt: asDate(r.delivered_at),
  };
}

function checkTypes(types: string[] | null | undefined): string[] {
  const list = [...new Set((types ?? []).map((t) => t.trim()))];
  for (const t of list) if (!isEventType(t)) throw new BadUserInputError("eventTypes", `contains ${JSON.stringify(t.slice(0, 60))}, which is not an event type`);
  return list;
}

function checkEndpointId(id: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw new NotFoundError(`Webhook endpoint ${id.slice(0, 60)}`);
  return id.toLowerCase();
}

/** The ledger's reads and the merchant's webhook endpoints (the deliveries themselves: src/events/delivery.ts). */
export class EventsService {
  constructor(
    private readonly config: EventsConfig,
    private readonly logger: Logger,
    /** Tells the delivery worker that deliveries became due (a redelivery). */
    private readonly wake: () => void = () => undefined,
  ) {}

  /** Newest first, keyset-paginated by id. */
  async list(em: EntityManager, filter: EventFilter, first: number, after?: string | null): Promise<Page<EventView>> {
    const limit = checkFirst(first);
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.type) where.push((values.push(filter.type), `"type" = ?`));
    if (filter.customerUid) where.push((values.push(checkUid("customerUid", filter.customerUid)), `"customer_uid" = ?`));
    if (filter.subscriptionId) where.push((values.push(checkUid("subscriptionId", filter.subscriptionId)), `"subscription_id" = ?`));
    if (after !== undefined && after !== null) {
      const key = decodeCursor("after", after);
      if (!/^[1-9]\d{0,17}$/.test(key)) throw new BadUserInputError("after", "is not a cursor returned by this API");
      where.push((values.push(key), `"id" < ?`));
    }
    const rows = await query<EventRow>(
      { em },
      `select ${EVENT_COLUMNS} from "events" ${where.length ? `where ${where.join(" and ")}` : ""} order by "events"."id" desc limit ?`,
      [...values, limit + 1],
    );
    const hasNextPage = rows.length > limit;
    const page = hasNextPage ? rows.slice(0, limit) : rows;
    return { nodes: page.map(eventView), pageInfo: { hasNextPage, endCursor: page.length ? encodeCursor(page[page.length - 1].id) : null } };
  }

  async get(em: EntityManager, id: string): Promise<EventView | null> {
    const [row] = await query<EventRow>({ em }, `select ${EVENT_COLUMNS} from "events" where "id" = ?`, [eventRowId(id)]);
    return row ? eventView(row) : null;
  }

  async endpoints(em: EntityManager): Promise<EndpointView[]> {
    return (await query<EndpointRow>({ em }, `select ${ENDPOINT_COLUMNS} from "webhook_endpoints" order by "created_at", "id"`, [])).map(endpointView);
  }

  async createEndpoint(em: EntityManager, url: string, eventTypes?: string[] | null): Promise<{ endpoint: EndpointView; secret: string }> {
    const checked = checkEndpointUrl(url, this.config.allowPrivateUrls);
    const types = checkTypes(eventTypes);
    const secret = newSecret();
    const [row] = await query<EndpointRow>({ em }, `insert into "webhook_endpoints" ("id", "url", "event_types", "secret")
       select ?, ?, ?, ? where (select count(*) from "webhook_endpoints") < ? returning ${ENDPOINT_COLUMNS}`, [crypto.randomUUID(), checked, types, secret, MAX_ENDPOINTS]);
    if (!row) throw new BadUserInputError("url", `cannot be added: at most ${MAX_ENDPOINTS} webhook endpoints`);
    this.logger.info({ endpoint: row.id, url: row.url, eventTypes: types }, "webhook endpoint created");
    return { endpoint: endpointView(row), secret };
  }

  async updateEndpoint(em: EntityManager, id: string, changes: { url?: string | null; eventTypes?: string[] | null; enabled?: boolean | null }): Promise<EndpointView> {
    const url = changes.url != null ? checkEndpointUrl(changes.url, this.config.allowPrivateUrls) : null;
    const types = changes.eventTypes != null ? checkTypes(changes.eventTypes) : null;
    const [row] = await query<EndpointRow>({ em }, `update "webhook_endpoints" set "url" = coalesce(?, "url"), "event_types" = coalesce(?, "event_types"),
              "enabled" = coalesce(?, "enabled"), "updated_at" = now() where "id" = ? returning ${ENDPOINT_COLUMNS}`, [url, types, changes.enabled ?? null, checkEndpointId(id)]);
    if (!row) throw new NotFoundError(`Webhook endpoint ${id}`);
    return endpointView(row);
  }

  /** A new secret; the old one keeps signing beside it for SECRET_OVERLAP_HOURS. */
  async rotateSecret(em: EntityManager, id: string): Promise<{ endpoint: EndpointView; secret: string }> {
    const secret = newSecret();
    const [row] = await query<EndpointRow>({ em }, `update "webhook_endpoints" set "previous_secret" = "secret", "secret" = ?,
              "previous_secret_expires_at" = now() + make_interval(hours => ?), "updated_at" = now()
        where "id" = ? returning ${ENDPOINT_COLUMNS}`, [secret, SECRET_OVERLAP_HOURS, checkEndpointId(id)]);
    if (!row) throw new NotFoundError(`Webhook endpoint ${id}`);
    this.logger.info({ endpoint: row.id }, "webhook endpoint secret rotated");
    return { endpoint: endpointView(row), secret };
  }

  async deleteEndpoint(em: EntityManager, id: string): Promise<EndpointView> {
    const [row] = await query<EndpointRow>({ em }, `delete from "webhook_endpoints" where "id" = ? returning ${ENDPOINT_COLUMNS}`, [checkEndpointId(id)]);
    if (!row) throw new NotFoundError(`Webhook endpoint ${id}`);
    this.logger.info({ endpoint: row.id }, "webhook endpoint deleted");
    return endpointView(row);
  }

  async deliveries(em: EntityManager, eventIdText: string): Promise<DeliveryView[]> {
    const rows = await query<DeliveryRow>({ em }, `select ${DELIVERY_COLUMNS} from "event_deliveries" where "event_id" = ? order by "created_at", "id"`, [eventRowId(eventIdText)]);
    return rows.map(deliveryView);
  }

  /**
   * Sends the event again to one endpoint, or to every enabled endpoint that
   * takes its type: a new round of attempts (the retry schedule starts over),
   * unless an attempt is pending already.
   */
  async redeliver(em: EntityManager, eventIdText: string, endpointId?: string | null): Promise<DeliveryView[]> {
    const rowId = eventRowId(eventIdText);
    const endpoint = endpointId ? checkEndpointId(endpointId) : null;
    const [event] = await query<{ type: string; order_key: string | null }>({ em }, `select "type", case when "subscription_id" is not null then 'subscription:' || "subscription_id"
                           when "customer_uid" is not null then 'customer:' || "customer_uid" end as "order_key"
         from "events" where "id" = ?`, [rowId]);
    if (!event) throw new NotFoundError(`Event ${eventIdText}`);
    const rows = await query<DeliveryRow>({ em }, `insert into "event_deliveries" ("event_id", "endpoint_id", "order_key", "next_attempt_at")
       select ?, w."id", ?, now() from "webhook_endpoints" w
        where (?::uuid is null and w."enabled" and (cardinality(w."event_types") = 0 or ? = any(w."event_types"))) or w."id" = ?::uuid
       on conflict ("event_id", "endpoint_id") do update
          set "status" = 'PENDING', "round_start" = "event_deliveries"."attempts", "next_attempt_at" = now(), "updated_at" = now()
        where "event_deliveries"."status" <> 'PENDING'
       returning ${DELIVERY_COLUMNS}`, [rowId, event.order_key, endpoint, event.type, endpoint]);
    if (endpoint && rows.length === 0) {
      const [exists] = await query({ em }, `select 1 from "webhook_endpoints" where "id" = ?`, [endpoint]);
      if (!exists) throw new NotFoundError(`Webhook endpoint ${endpointId}`);
    }
    this.wake();
    return this.deliveries(em, eventIdText).then((all) => (endpoint ? all.filter((d) => d.endpointId === endpoint) : all));
  }
}
