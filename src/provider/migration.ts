import type {
  CallOptions,
  CancelRequest,
  ChargeRequest,
  IssueKeyRequest,
  PaymentProvider,
  ProviderCard,
  ProviderPayment,
  ProviderSchedule,
  ProviderWebhook,
  ScheduleRequest,
} from "./port";

/**
 * A server on Iamport V1 in migration mode (PAYMENT_PROVIDER_MIGRATION=v1_to_v2):
 * it charges, registers and manages cards through V1, but asks the provider that
 * holds each charge about it. `npm run migrate:v2` revokes a charge at V1 and
 * registers it at V2 under the same merchant_uid, marking it held by V2
 * (payments.held_by): V1 then answers for it only "revoked", so look-ups,
 * refunds and revocations of that order go to V2, and V2's signed webhooks are
 * verified here. The answers are the port's, settled by the same code as any other.
 * V2's paymentId is the merchant_uid, so a V2 payment's imp_uid names its order.
 */
export class MigratingProvider implements PaymentProvider {
  readonly name = "v1" as const;
  readonly label: PaymentProvider["label"];
  readonly parseWebhook: (rawBody: string, headers: Record<string, string | string[] | undefined>) => ProviderWebhook;

  constructor(
    private readonly v1: PaymentProvider,
    private readonly v2: PaymentProvider,
    /** Which of these orders the migration moved to V2. */
    private readonly heldByV2: (merchantUids: readonly string[]) => Promise<Set<string>>,
  ) {
    this.label = v1.label;
    const parse = v2.parseWebhook;
    if (!parse) throw new Error("the V2 provider reads no webhooks");
    this.parseWebhook = (rawBody, headers) => parse.call(v2, rawBody, headers);
  }

  private async holder(merchantUid: string | undefined): Promise<PaymentProvider> {
    return merchantUid !== undefined && (await this.heldByV2([merchantUid])).has(merchantUid) ? this.v2 : this.v1;
  }

  issueKey(customerUid: string, req: IssueKeyRequest, o?: CallOptions): Promise<ProviderCard> {
    return this.v1.issueKey(customerUid, req, o);
  }

  getKey(customerUid: string, billingKey?: string, o?: CallOptions): Promise<ProviderCard> {
    return this.v1.getKey(customerUid, billingKey, o);
  }

  deleteKey(customerUid: string, o?: CallOptions): Promise<void> {
    return this.v1.deleteKey(customerUid, o);
  }

  charge(req: ChargeRequest, o?: CallOptions): Promise<ProviderPayment> {
    return this.v1.charge(req, o);
  }

  schedule(customerUid: string, entries: ScheduleRequest[], o?: CallOptions): Promise<ProviderSchedule[]> {
    return this.v1.schedule(customerUid, entries, o);
  }

  /** Each order at the provider that holds it; all of a customer's at both (V2 holds only moved ones). */
  async revoke(customerUid: string, merchantUids?: string[], o?: CallOptions): Promise<ProviderSchedule[]> {
    if (!merchantUids) return [...(await this.v1.revoke(customerUid, undefined, o)), ...(await this.v2.revoke(customerUid, undefined, o))];
    const moved = await this.heldByV2(merchantUids);
    const atV1 = merchantUids.filter((m) => !moved.has(m));
    const atV2 = merchantUids.filter((m) => moved.has(m));
    return [...(atV1.length ? await this.v1.revoke(customerUid, atV1, o) : []), ...(atV2.length ? await this.v2.revoke(customerUid, atV2, o) : [])];
  }

  async getSchedule(merchantUid: string, o?: CallOptions): Promise<ProviderSchedule> {
    return (await this.holder(merchantUid)).getSchedule(merchantUid, o);
  }

  async getPayment(impUid: string, o?: CallOptions): Promise<ProviderPayment> {
    return (await this.holder(impUid)).getPayment(impUid, o);
  }

  async findByOrder(merchantUid: string, o?: CallOptions): Promise<ProviderPayment> {
    return (await this.holder(merchantUid)).findByOrder(merchantUid, o);
  }

  async cancel(req: CancelRequest, o?: CallOptions): Promise<ProviderPayment> {
    return (await this.holder(req.merchantUid ?? req.impUid)).cancel(req, o);
  }

  prepare(merchantUid: string, amount: number, o?: CallOptions): Promise<void> {
    return this.v1.prepare(merchantUid, amount, o);
  }

  ensureToken(): Promise<void> {
    return this.v1.ensureToken();
  }

  /** V1's clock judges due charges, as on V1 (both providers keep real time). */
  serverNow(): Promise<number> {
    return this.v1.serverNow();
  }
}
