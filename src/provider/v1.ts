import type { IamportClient } from "../iamport/iamport.client";
import type { IamportSchedule } from "../iamport/iamport.types";
import type {
  CallOptions,
  CancelRequest,
  ChargeRequest,
  IssueKeyRequest,
  PaymentProvider,
  ProviderCard,
  ProviderPayment,
  ProviderSchedule,
  ScheduleRequest,
} from "./port";

/**
 * Iamport V1 behind the port: the merchant's customer_uid is the billing key,
 * a decline is an answer with status failed, schedules go in one batch, a
 * cancel carries the refundable amount as its checksum. Webhooks arrive
 * unsigned on /iamport-webhook and are only hints (no parseWebhook).
 */
export class IamportV1Provider implements PaymentProvider {
  readonly name = "v1" as const;
  readonly label = "Iamport" as const;

  constructor(readonly client: IamportClient) {}

  async issueKey(customerUid: string, r: IssueKeyRequest, o?: CallOptions): Promise<ProviderCard> {
    const c = await this.client.issueBillingKey(
      customerUid,
      {
        card_number: r.cardNumber,
        expiry: r.expiry,
        birth: r.birth,
        pwd_2digit: r.pwd2digit,
        customer_id: r.customerId,
        customer_name: r.customerName,
        customer_email: r.customerEmail,
        customer_tel: r.customerTel,
        pg: r.pg,
      },
      o,
    );
    return { ...c, billingKey: null };
  }

  async getKey(customerUid: string, _billingKey?: string, o?: CallOptions): Promise<ProviderCard> {
    return { ...(await this.client.getCustomer(customerUid, o)), billingKey: null };
  }

  async deleteKey(customerUid: string, o?: CallOptions): Promise<void> {
    await this.client.deleteCustomer(customerUid, o);
  }

  charge(r: ChargeRequest, o?: CallOptions): Promise<ProviderPayment> {
    return this.client.again(
      {
        customer_uid: r.customerUid,
        merchant_uid: r.merchantUid,
        amount: r.amount,
        name: r.name,
        buyer_name: r.buyerName,
        buyer_email: r.buyerEmail,
        buyer_tel: r.buyerTel,
        custom_data: r.customData,
        notice_url: r.noticeUrl,
        ...(r.taxFree !== undefined ? { tax_free: r.taxFree } : {}),
        ...(r.vat !== undefined ? { vat_amount: r.vat } : {}),
      },
      o,
    );
  }

  async schedule(customerUid: string, entries: ScheduleRequest[], o?: CallOptions): Promise<ProviderSchedule[]> {
    const answered = await this.client.schedule(
      customerUid,
      entries.map((e) => ({
        merchant_uid: e.merchantUid,
        schedule_at: e.at,
        amount: e.amount,
        name: e.name,
        currency: e.currency,
        buyer_name: e.buyerName,
        buyer_email: e.buyerEmail,
        buyer_tel: e.buyerTel,
        custom_data: e.customData,
        notice_url: e.noticeUrl,
        ...(e.taxFree !== undefined ? { tax_free: e.taxFree } : {}),
        ...(e.vat !== undefined ? { vat_amount: e.vat } : {}),
      })),
      o,
    );
    return answered.map(schedule);
  }

  async revoke(customerUid: string, merchantUids?: string[], o?: CallOptions): Promise<ProviderSchedule[]> {
    return (await this.client.unschedule(customerUid, merchantUids, o)).map(schedule);
  }

  async getSchedule(merchantUid: string, o?: CallOptions): Promise<ProviderSchedule> {
    return schedule(await this.client.getSchedule(merchantUid, o));
  }

  getPayment(impUid: string, o?: CallOptions): Promise<ProviderPayment> {
    return this.client.getPayment(impUid, o);
  }

  findByOrder(merchantUid: string, o?: CallOptions): Promise<ProviderPayment> {
    return this.client.findPayment(merchantUid, o);
  }

  cancel(r: CancelRequest, o?: CallOptions): Promise<ProviderPayment> {
    return this.client.cancel(
      {
        imp_uid: r.impUid,
        merchant_uid: r.merchantUid,
        amount: r.amount,
        checksum: r.cancellable,
        reason: r.reason,
        ...(r.taxFree !== undefined ? { tax_free: r.taxFree } : {}),
        ...(r.vat !== undefined ? { vat_amount: r.vat } : {}),
      },
      o,
    );
  }

  async prepare(merchantUid: string, amount: number, o?: CallOptions): Promise<void> {
    await this.client.prepare(merchantUid, amount, o);
  }

  ensureToken(): Promise<void> {
    return this.client.ensureToken();
  }

  serverNow(): Promise<number> {
    return this.client.serverNow();
  }
}

function schedule(s: IamportSchedule): ProviderSchedule {
  return { merchant_uid: s.merchant_uid, imp_uid: s.imp_uid, schedule_at: s.schedule_at, schedule_status: s.schedule_status, amount: s.amount };
}
