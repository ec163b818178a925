import { claimCard, releaseCard } from "../db/repositories/card-claims";
import { Card } from "../db/entities";
import { CardStatus, CardType } from "../db/entities/enums";
import { BadUserInputError, CardRejectedError, ConflictError, NotFoundError } from "../errors";
import { cardData, withTransaction } from "../events/present";
import { recordEvent } from "../events/record";
import { IamportNotFoundError, IamportRefusedError, type ProviderCard } from "../provider/port";
import { BillingDeps, Ctx, upstreamError } from "./context";
import { checkBirth, checkExpiry, checkPwd2, checkUid, normalizeCardNumber, optionalText } from "./validation";

export interface RegisterCardInput {
  customerUid: string;
  cardNumber: string;
  expiry: string;
  birth: string;
  pwd2digit?: string | null;
  customerId?: string | null;
  customerName?: string | null;
  customerEmail?: string | null;
  customerTel?: string | null;
  pg?: string | null;
  /** Replace the customer's ACTIVE card; without it, registering over one is CONFLICT. */
  replace?: boolean | null;
}

/** Field names of RegisterCardInput as the caller spelled them (GraphQL camelCase or the REST form's snake_case). */
export type CardFieldNames = Record<"customerUid" | "cardNumber" | "expiry" | "birth" | "pwd2digit", string>;

const GRAPHQL_FIELDS: CardFieldNames = {
  customerUid: "customerUid",
  cardNumber: "cardNumber",
  expiry: "expiry",
  birth: "birth",
  pwd2digit: "pwd2digit",
};

/**
 * Before a billing key is deleted: refuses (CONFLICT) while live subscriptions
 * would still charge it, or cancels them when `cancelSubscriptions` is set.
 * Subscriptions register it (they are built on top of cards).
 */
export type ReleaseSubscriptions = (ctx: Ctx, customerUid: string, cancelSubscriptions: boolean) => Promise<void>;

/** Billing keys: issued by Iamport from card data that passes through memory only. */
export class CardService {
  /**
   * `releaseSubscriptions`: what deleting a card does to the subscriptions it
   * pays for (SubscriptionService.releaseCard).
   */
  constructor(
    private readonly deps: BillingDeps,
    private readonly releaseSubscriptions: ReleaseSubscriptions,
  ) {}

  /**
   * Issues the billing key for customerUid and stores what Iamport returned.
   * Over an ACTIVE card this is a replacement: refused with CONFLICT (nothing
   * sent to Iamport) unless input.replace, and recorded on the card when done.
   * The check, the Iamport call and the write run under the customer's claim
   * (underClaim), so two registrations at once cannot both find no active card:
   * the second is CONFLICT while the first is in progress.
   */
  async register(ctx: Ctx, input: RegisterCardInput, fields: CardFieldNames = GRAPHQL_FIELDS): Promise<Card> {
    const customerUid = checkUid(fields.customerUid, input.customerUid);
    const card_number = normalizeCardNumber(fields.cardNumber, input.cardNumber);
    const expiry = checkExpiry(fields.expiry, input.expiry);
    const birth = checkBirth(fields.birth, input.birth);
    const pwd_2digit = checkPwd2(fields.pwd2digit, input.pwd2digit);
    const customer_id = optionalText("customerId", input.customerId, 80);
    const customer_name = optionalText("customerName", input.customerName, 100);
    const customer_email = optionalText("customerEmail", input.customerEmail, 200);
    const customer_tel = optionalText("customerTel", input.customerTel, 40);
    const pg = optionalText("pg", input.pg, 80);

    return this.underClaim(ctx, customerUid, async (existing) => {
      const replaced = existing?.status === CardStatus.ACTIVE ? existing : null;
      if (replaced && !input.replace) {
        throw new ConflictError(`Customer ${customerUid} already has an active card; replacing it takes replace: true`, { customerUid });
      }
      const previousCard = replaced?.cardNumberMasked ?? null;
      let customer: ProviderCard;
      try {
        customer = await this.deps.provider.issueKey(
          customerUid,
          { cardNumber: card_number, expiry, birth, pwd2digit: pwd_2digit, customerId: customer_id, customerName: customer_name, customerEmail: customer_email, customerTel: customer_tel, pg },
          { requestId: ctx.requestId },
        );
      } catch (err) {
        if (err instanceof IamportRefusedError) {
          ctx.log.info({ customerUid, iamportCode: err.code }, "billing key refused");
          throw new CardRejectedError(err.iamportMessage || "The card was refused", err.code);
        }
        throw upstreamError(err, "billing key");
      }
      const card = await this.store(ctx, customerUid, existing, customer, replaced !== null);
      if (replaced) ctx.log.info({ customerUid, previousCard, card: card.cardNumberMasked, replacements: card.replacements }, "card replaced");
      else ctx.log.info({ customerUid, card: card.cardNumberMasked }, "billing key issued");
      return card;
    });
  }

  /**
   * Confirms a billing key issued in the browser and stores the card the
   * provider holds: on Iamport V1 the key of customer_uid (IMP.request_pay with
   * customer_uid); on PortOne V2 the billingKey its requestIssueBillingKey gave
   * the browser, issued with customer.customerId = customer_uid (a key of
   * another customer is refused). The provider has the key already, so the row
   * follows it.
   */
  async confirm(ctx: Ctx, customerUidRaw: string, fields: { customerUid: string; billingKey: string } = { customerUid: "customerUid", billingKey: "billingKey" }, billingKeyRaw?: string | null): Promise<Card> {
    const customerUid = checkUid(fields.customerUid, customerUidRaw);
    const billingKey = optionalText(fields.billingKey, billingKeyRaw, 200);
    const v2 = this.deps.provider.name === "v2";
    if (billingKey !== undefined && !v2) throw new BadUserInputError(fields.billingKey, "is PortOne V2's: on Iamport V1 the customer_uid is the billing key");
    return this.underClaim(ctx, customerUid, async (existing) => {
      if (v2 && billingKey === undefined && !(existing?.status === CardStatus.ACTIVE && existing.billingKey)) {
        throw new BadUserInputError(fields.billingKey, "is required on PortOne V2: the billingKey requestIssueBillingKey gave the browser");
      }
      let customer: ProviderCard;
      try {
        customer = await this.deps.provider.getKey(customerUid, billingKey, { requestId: ctx.requestId });
      } catch (err) {
        if (err instanceof IamportRefusedError) throw new BadUserInputError(fields.billingKey, err.iamportMessage);
        throw upstreamError(err, `Billing key ${billingKey ?? customerUid}`);
      }
      return this.store(ctx, customerUid, existing, customer, false);
    });
  }

  /**
   * Deletes the billing key at Iamport and marks the card DELETED. Refused
   * with CONFLICT while live subscriptions would still charge it, unless
   * `cancelSubscriptions`: then they are canceled first (revoking their schedules).
   */
  async delete(ctx: Ctx, customerUidRaw: string, opts: { cancelSubscriptions?: boolean | null } = {}): Promise<Card> {
    const customerUid = checkUid("customerUid", customerUidRaw);
    const active = await ctx.em.findOne(Card, { customerUid, status: CardStatus.ACTIVE });
    if (!active) throw new NotFoundError(`Card ${customerUid}`);
    await this.releaseSubscriptions(ctx, customerUid, opts.cancelSubscriptions === true);
    return this.underClaim(ctx, customerUid, async (card) => {
      if (card?.status !== CardStatus.ACTIVE) throw new NotFoundError(`Card ${customerUid}`);
      try {
        await this.deps.provider.deleteKey(customerUid, { requestId: ctx.requestId });
      } catch (err) {
        // Already gone at Iamport: the goal is reached.
        if (!(err instanceof IamportNotFoundError)) throw upstreamError(err, `Billing key ${customerUid}`);
      }
      card.status = CardStatus.DELETED;
      card.deletedAt = new Date();
      await withTransaction(ctx.em, async () => {
        await ctx.em.flush();
        await recordEvent(ctx.em, { type: "card.deleted", customerUid, data: cardData(card) });
      });
      return card;
    });
  }

  async get(ctx: Ctx, customerUid: string): Promise<Card | null> {
    return ctx.em.findOne(Card, { customerUid: checkUid("customerUid", customerUid) });
  }

  /** The cards of these customers (stored customerUids: a list's rows), in one statement. */
  async getMany(ctx: Ctx, customerUids: readonly string[]): Promise<Card[]> {
    return customerUids.length ? ctx.em.find(Card, { customerUid: { $in: [...customerUids] } }) : [];
  }

  /**
   * Runs fn while this request holds the customer's card claim
   * (src/db/repositories/card-claims.ts), with the card row as it is once claimed. The claim
   * is committed before fn calls Iamport and released after fn recorded the
   * answer, so no lock or connection is held while Iamport answers; a second
   * change for the same customer meanwhile is CONFLICT, retryable. The claim
   * outlives the slowest Iamport answer (its timeout, a token refresh and one
   * repeat), and expires by itself if this process dies.
   */
  private async underClaim<T>(ctx: Ctx, customerUid: string, fn: (existing: Card | null) => Promise<T>): Promise<T> {
    const seconds = Math.ceil((3 * this.deps.config.iamport.timeoutMs) / 1000) + 5;
    if (!(await claimCard(ctx, customerUid, seconds))) {
      throw new ConflictError(`Another change to customer ${customerUid}'s card is in progress; retry when it is done`, { customerUid, retryable: true });
    }
    try {
      const existing = await ctx.em.findOne(Card, { customerUid }, { refresh: true });
      return await fn(existing);
    } finally {
      await releaseCard(ctx, customerUid).catch((err) => ctx.log.warn({ customerUid, err: (err as Error).message }, "card claim not released; it expires by itself"));
    }
  }

  /** Writes what Iamport returned into the customer's row (under underClaim), counting a replacement. */
  private async store(tx: Ctx, customerUid: string, existing: Card | null, c: ProviderCard, replacement: boolean): Promise<Card> {
    const now = new Date();
    const data = {
      customerId: c.customer_id ?? null,
      cardName: c.card_name ?? null,
      cardCode: c.card_code ?? null,
      cardNumberMasked: c.card_number ? maskAgain(c.card_number) : null,
      cardType: c.card_type === 1 ? CardType.CHECK : c.card_type === 0 ? CardType.CREDIT : null,
      pgProvider: c.pg_provider ?? null,
      pgId: c.pg_id ?? null,
      // V2 issues a new key for every registration; on V1 the customer_uid is the key (null here).
      billingKey: c.billingKey ?? null,
      status: CardStatus.ACTIVE,
      deletedAt: null,
      updatedAt: now,
    };
    const card = existing ?? tx.em.create(Card, { customerUid, createdAt: now, ...data });
    if (existing) tx.em.assign(existing, data);
    if (replacement) {
      card.replacedAt = now;
      card.replacements += 1;
    }
    await withTransaction(tx.em, async () => {
      await tx.em.flush();
      await recordEvent(tx.em, { type: "card.registered", customerUid, data: cardData(card) });
    });
    return card;
  }
}

/**
 * Iamport returns the card number masked; mask again defensively so that a
 * whole number can never reach the table even if an upstream answer had one.
 */
export function maskAgain(n: string): string {
  const digits = n.replace(/\D/g, "");
  if (digits.length >= 12 && !/[*xX]/.test(n)) return `${digits.slice(0, 6)}******${digits.slice(-4)}`.slice(0, 40);
  return n.slice(0, 40);
}

/** The customer's ACTIVE card, or NOT_FOUND: a charge needs a billing key. */
export async function requireActiveCard(ctx: Ctx, customerUid: string): Promise<Card> {
  const card = await ctx.em.findOne(Card, { customerUid, status: CardStatus.ACTIVE });
  if (!card) throw new NotFoundError(`Card ${customerUid}`);
  return card;
}
