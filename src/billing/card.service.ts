import { Card } from "../db/entities";
import { CardStatus, CardType } from "../db/entities/enums";
import { CardRejectedError, NotFoundError } from "../errors";
import { IamportNotFoundError, IamportRefusedError } from "../iamport/iamport.errors";
import type { IamportCustomer } from "../iamport/iamport.types";
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
  private releaseSubscriptions?: ReleaseSubscriptions;

  constructor(private readonly deps: BillingDeps) {}

  setReleaseSubscriptions(fn: ReleaseSubscriptions): void {
    this.releaseSubscriptions = fn;
  }

  /** Issues (or replaces) the billing key for customerUid and stores what Iamport returned. */
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

    let customer: IamportCustomer;
    try {
      customer = await this.deps.iamport.issueBillingKey(
        customerUid,
        { card_number, expiry, birth, pwd_2digit, customer_id, customer_name, customer_email, customer_tel, pg },
        { requestId: ctx.requestId },
      );
    } catch (err) {
      if (err instanceof IamportRefusedError) {
        ctx.log.info({ customerUid, iamportCode: err.code }, "billing key refused");
        throw new CardRejectedError(err.iamportMessage || "The card was refused", err.code);
      }
      throw upstreamError(err, "billing key");
    }
    const card = await this.upsert(ctx, customer);
    ctx.log.info({ customerUid, card: card.cardNumberMasked }, "billing key issued");
    return card;
  }

  /** Confirms a billing key issued in the browser (IMP.request_pay with customer_uid) and stores the card. */
  async confirm(ctx: Ctx, customerUidRaw: string, field = "customerUid"): Promise<Card> {
    const customerUid = checkUid(field, customerUidRaw);
    let customer: IamportCustomer;
    try {
      customer = await this.deps.iamport.getCustomer(customerUid, { requestId: ctx.requestId });
    } catch (err) {
      throw upstreamError(err, `Billing key ${customerUid}`);
    }
    return this.upsert(ctx, customer);
  }

  /**
   * Deletes the billing key at Iamport and marks the card DELETED. Refused
   * with CONFLICT while live subscriptions would still charge it, unless
   * `cancelSubscriptions`: then they are canceled first (revoking their schedules).
   */
  async delete(ctx: Ctx, customerUidRaw: string, opts: { cancelSubscriptions?: boolean | null } = {}): Promise<Card> {
    const customerUid = checkUid("customerUid", customerUidRaw);
    const card = await ctx.em.findOne(Card, { customerUid, status: CardStatus.ACTIVE });
    if (!card) throw new NotFoundError(`Card ${customerUid}`);
    await this.releaseSubscriptions?.(ctx, customerUid, opts.cancelSubscriptions === true);
    try {
      await this.deps.iamport.deleteCustomer(customerUid, { requestId: ctx.requestId });
    } catch (err) {
      // Already gone at Iamport: the goal is reached.
      if (!(err instanceof IamportNotFoundError)) throw upstreamError(err, `Billing key ${customerUid}`);
    }
    card.status = CardStatus.DELETED;
    card.deletedAt = new Date();
    await ctx.em.flush();
    return card;
  }

  async get(ctx: Ctx, customerUid: string): Promise<Card | null> {
    return ctx.em.findOne(Card, { customerUid: checkUid("customerUid", customerUid) });
  }

  /** The active card of a customer, or NOT_FOUND. */
  async requireActive(ctx: Ctx, customerUid: string): Promise<Card> {
    const card = await ctx.em.findOne(Card, { customerUid, status: CardStatus.ACTIVE });
    if (!card) throw new NotFoundError(`Card ${customerUid}`);
    return card;
  }

  private async upsert(ctx: Ctx, c: IamportCustomer): Promise<Card> {
    const em = ctx.em;
    const data = {
      customerUid: c.customer_uid,
      customerId: c.customer_id ?? null,
      cardName: c.card_name ?? null,
      cardCode: c.card_code ?? null,
      cardNumberMasked: c.card_number ? maskAgain(c.card_number) : null,
      cardType: c.card_type === 1 ? CardType.CHECK : c.card_type === 0 ? CardType.CREDIT : null,
      pgProvider: c.pg_provider ?? null,
      pgId: c.pg_id ?? null,
      status: CardStatus.ACTIVE,
      deletedAt: null,
      updatedAt: new Date(),
    };
    // One statement: concurrent registrations of the same customer_uid converge on one row.
    const card = await em.upsert(Card, { ...data, createdAt: new Date() }, {
      onConflictFields: ["customerUid"],
      onConflictExcludeFields: ["createdAt"],
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
