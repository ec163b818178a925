import { TurnBatcher } from "../db/batch";
import type { Card, Notice, Plan, PriceChange, Subscription } from "../db/entities";
import type { PaymentView } from "../billing/payment.service";
import type { Page } from "../billing/pagination";
import type { GraphQLContext } from "./context";

/** Keys per statement: a page holds at most MAX_PAGE rows, but nested lists may ask for more at once. */
const MAX_KEYS = 500;

/**
 * One field's reads in one request, made together. graphql-js calls the
 * field resolvers of every row of a list in the same turn of the event loop;
 * each call joins the turn's batch, and the batch is one statement for all
 * its keys instead of one per row. Nothing is kept once answered: the root
 * fields of a mutation run one after another, and each must see what the
 * one before it changed.
 */
class FieldLoader<K, V> {
  private readonly batcher: TurnBatcher<K, V | null>;

  constructor(keyOf: (k: K) => string, fetch: (keys: K[]) => Promise<Map<string, V>>) {
    this.batcher = new TurnBatcher<K, V | null>(MAX_KEYS, async (batch) => {
      const unique = new Map<string, K>();
      for (const p of batch) unique.set(keyOf(p.input), p.input);
      const found = await fetch([...unique.values()]);
      for (const p of batch) p.resolve(found.get(keyOf(p.input)) ?? null);
    });
  }

  load(key: K): Promise<V | null> {
    return this.batcher.push(key);
  }
}

function byKey<V>(rows: V[], keyOf: (v: V) => string): Map<string, V> {
  return new Map(rows.map((r) => [keyOf(r), r]));
}

/** The batched reads of Subscription's and Payment's fields, for one request. */
export class RequestLoaders {
  readonly card: FieldLoader<string, Card>;
  readonly plan: FieldLoader<string, Plan>;
  readonly pendingPriceChange: FieldLoader<string, PriceChange>;
  /** Payment.subscription, by subscription id. */
  readonly subscription: FieldLoader<string, Subscription>;
  /** Notices by subscription, one loader per `first` (rows asking for the same number share a statement). */
  private readonly noticesByFirst = new Map<number, FieldLoader<Subscription, Notice[]>>();
  /** Payments by subscription, one loader per (first, after): rows asking the same share a statement. */
  private readonly paymentsByArgs = new Map<string, FieldLoader<string, Page<PaymentView>>>();

  constructor(private readonly ctx: GraphQLContext) {
    const { cards, plans, priceChanges, subscriptions } = ctx.services;
    const id = (s: string) => s;
    this.card = new FieldLoader(id, async (uids) => byKey(await cards.getMany(ctx, uids), (c) => c.customerUid));
    this.plan = new FieldLoader(id, async (codes) => byKey(await plans.getMany(ctx, codes), (p) => p.code));
    this.pendingPriceChange = new FieldLoader(id, async (ids) => byKey(await priceChanges.pendingForMany(ctx, ids), (c) => c.subscriptionId));
    this.subscription = new FieldLoader(id, async (ids) => byKey(await subscriptions.getMany(ctx, ids), (s) => s.id));
  }

  async notices(sub: Subscription, first: number): Promise<Notice[]> {
    let loader = this.noticesByFirst.get(first);
    if (!loader) {
      loader = new FieldLoader<Subscription, Notice[]>(
        (s) => s.id,
        (subs) => this.ctx.services.notices.listMany(this.ctx, subs, first),
      );
      this.noticesByFirst.set(first, loader);
    }
    return (await loader.load(sub)) ?? [];
  }

  async payments(subscriptionId: string, first: number, after: string | null): Promise<Page<PaymentView>> {
    const args = JSON.stringify([first, after]);
    let loader = this.paymentsByArgs.get(args);
    if (!loader) {
      loader = new FieldLoader<string, Page<PaymentView>>(
        (s) => s,
        (ids) => this.ctx.services.payments.listMany(this.ctx, ids, first, after),
      );
      this.paymentsByArgs.set(args, loader);
    }
    // listMany answers every id it is given.
    return (await loader.load(subscriptionId))!;
  }
}

const perRequest = new WeakMap<GraphQLContext, RequestLoaders>();

/** The request's loaders, made on first use and dropped with its context. */
export function loaders(ctx: GraphQLContext): RequestLoaders {
  let l = perRequest.get(ctx);
  if (!l) {
    l = new RequestLoaders(ctx);
    perRequest.set(ctx, l);
  }
  return l;
}
