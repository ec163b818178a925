/**
 * A small typed client for the billing server's GraphQL API, as a merchant app would write it.
 *
 * The operations live in ./operations.graphql; their result and variable types (and the
 * parsed documents) are generated into ./generated/graphql.ts by `npm run codegen`, so a
 * field renamed on the server or in an operation is a compile error here, not a runtime surprise.
 */
import { ClientError, GraphQLClient } from "graphql-request";
import {
  ListPaymentsDocument,
  RegisterCardDocument,
  StartSubscriptionDocument,
  type ListPaymentsQuery,
  type ListPaymentsQueryVariables,
  type RegisterCardInput,
  type RegisterCardMutation,
  type StartSubscriptionInput,
  type StartSubscriptionMutation,
} from "./generated/graphql";

export type Card = RegisterCardMutation["registerCard"];
export type Subscription = StartSubscriptionMutation["startSubscription"];
export type PaymentPage = ListPaymentsQuery["payments"];
export type Payment = PaymentPage["nodes"][number];
export type { ListPaymentsQueryVariables as PaymentFilter, RegisterCardInput, StartSubscriptionInput };

/** A GraphQL error answered by the server, with its `extensions.code` (BAD_USER_INPUT, NOT_FOUND, CARD_REJECTED, ...). */
export class BillingApiError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly field: string | undefined,
    readonly httpStatus: number,
  ) {
    super(message);
    this.name = "BillingApiError";
  }
}

export interface BillingClient {
  /** Issues a billing key with Iamport for the card and stores it under `input.customerUid`. */
  registerCard(input: RegisterCardInput): Promise<Card>;
  /** Starts a subscription on a registered card; without `startAt` the first period is charged at once. */
  startSubscription(input: StartSubscriptionInput): Promise<Subscription>;
  /** Payments, newest first, filtered by customer, subscription or status; `first` at most 100, `after` a cursor. */
  listPayments(filter?: ListPaymentsQueryVariables): Promise<PaymentPage>;
}

/** Turns graphql-request's ClientError into a BillingApiError carrying the server's error code. */
async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ClientError) {
      const first = err.response.errors?.[0];
      const ext = (first?.extensions ?? {}) as { code?: string; field?: string };
      throw new BillingApiError(first?.message ?? err.message, ext.code, ext.field, err.response.status);
    }
    throw err;
  }
}

/**
 * @param url the server's GraphQL endpoint, e.g. http://localhost:4000/graphql
 * @param apiKey one of the server's API_KEYS (sent as `Authorization: Bearer <key>`)
 */
export function createBillingClient(url: string, apiKey: string): BillingClient {
  const gql = new GraphQLClient(url, { headers: { authorization: `Bearer ${apiKey}` } });
  return {
    async registerCard(input) {
      const data = await call(() => gql.request(RegisterCardDocument, { input }));
      return data.registerCard;
    },
    async startSubscription(input) {
      const data = await call(() => gql.request(StartSubscriptionDocument, { input }));
      return data.startSubscription;
    },
    async listPayments(filter = {}) {
      const data = await call(() => gql.request(ListPaymentsDocument, filter));
      return data.payments;
    },
  };
}
