/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';
export type BillingInterval =
  | 'DAY'
  | 'MONTH'
  | 'WEEK'
  | 'YEAR';

export type CardStatus =
  | 'ACTIVE'
  | 'DELETED';

export type CardType =
  | 'CHECK'
  | 'CREDIT';

export type PaymentStatus =
  | 'CANCELLED'
  | 'FAILED'
  /** The payment provider reports an amount that differs from the order: never treated as paid. */
  | 'FORGERY_SUSPECTED'
  | 'PAID'
  /** Order recorded; the charge has not been confirmed by the payment provider yet. */
  | 'PENDING'
  /** Virtual account issued; waiting for the deposit. */
  | 'READY'
  /** A schedule that was revoked before it ran. */
  | 'REVOKED'
  /** Registered with the payment provider's schedule; it will be attempted at scheduledAt. */
  | 'SCHEDULED';

export type RegisterCardInput = {
  /** YYMMDD, or a 10-digit business registration number for corporate cards */
  birth: string;
  /** dddd-dddd-dddd-dddd (digits without dashes are accepted too) */
  cardNumber: string;
  customerEmail?: string | null | undefined;
  customerId?: string | null | undefined;
  customerName?: string | null | undefined;
  customerTel?: string | null | undefined;
  customerUid: string;
  /** YYYY-MM */
  expiry: string;
  pg?: string | null | undefined;
  pwd2digit?: string | null | undefined;
  /** Replace the customer's active card. Without it, registering over an active card is CONFLICT and nothing is sent to the payment provider. */
  replace?: boolean | null | undefined;
};

export type StartSubscriptionInput = {
  /** Start it even while the customer has a live (INCOMPLETE, TRIALING, ACTIVE, PAST_DUE or PAUSED) subscription of the same name; without it such a start is CONFLICT naming that subscription. */
  allowDuplicate?: boolean | null | undefined;
  /** Taken from the plan when planCode is given; required otherwise. */
  amount?: number | null | undefined;
  customerUid: string;
  /** Taken from the plan when planCode is given; required otherwise. */
  interval?: BillingInterval | null | undefined;
  intervalCount?: number | null | undefined;
  /** Taken from the plan when planCode is given; required otherwise. */
  name?: string | null | undefined;
  /** Take name, amount, interval and trial from this plan. */
  planCode?: string | null | undefined;
  /** When the first payment is taken; now (charged at once) when omitted. */
  startAt?: string | null | undefined;
  /** The tax-free part of amount (Iamport V1's tax_free, PortOne V2's amount.taxFree). */
  taxFreeAmount?: number | null | undefined;
  /** Days of free trial (overrides the plan's): TRIALING, nothing charged; at its end the first charge, only with the customer's consent (consentToTrialConversion). */
  trialDays?: number | null | undefined;
  /** The VAT part of amount (V1's vat_amount, V2's amount.vat); omitted: the payment provider computes it. */
  vatAmount?: number | null | undefined;
};

export type SubscriptionStatus =
  | 'ACTIVE'
  | 'CANCELED'
  /** The first payment has not been confirmed yet. */
  | 'INCOMPLETE'
  /** The last renewal failed; retries are scheduled. */
  | 'PAST_DUE'
  /** No charges until resumed; nothing scheduled at the payment provider. */
  | 'PAUSED'
  /** In a free trial; nothing charged yet. */
  | 'TRIALING'
  /** Retries are exhausted without a payment. */
  | 'UNPAID';

export type CardFieldsFragment = { customerUid: string, cardName: string | null, cardNumberMasked: string | null, cardType: CardType | null, pgProvider: string | null, status: CardStatus, createdAt: string };

export type PaymentFieldsFragment = { merchantUid: string, impUid: string | null, customerUid: string | null, name: string, amount: number, paidAmount: number | null, cancelledAmount: number, currency: string, status: PaymentStatus, failReason: string | null, scheduledAt: string | null, paidAt: string | null, receiptUrl: string | null, createdAt: string };

export type RegisterCardMutationVariables = Exact<{
  input: RegisterCardInput;
}>;


export type RegisterCardMutation = { registerCard: { customerUid: string, cardName: string | null, cardNumberMasked: string | null, cardType: CardType | null, pgProvider: string | null, status: CardStatus, createdAt: string } };

export type StartSubscriptionMutationVariables = Exact<{
  input: StartSubscriptionInput;
}>;


export type StartSubscriptionMutation = { startSubscription: { id: string, customerUid: string, name: string, amount: number, interval: BillingInterval, intervalCount: number, status: SubscriptionStatus, statusReason: string | null, currentPeriodStart: string | null, currentPeriodEnd: string | null, nextPaymentAt: string | null, cancelAtPeriodEnd: boolean } };

export type ListPaymentsQueryVariables = Exact<{
  customerUid?: string | null | undefined;
  subscriptionId?: string | number | null | undefined;
  status?: PaymentStatus | null | undefined;
  first?: number | null | undefined;
  after?: string | null | undefined;
}>;


export type ListPaymentsQuery = { payments: { nodes: Array<{ merchantUid: string, impUid: string | null, customerUid: string | null, name: string, amount: number, paidAmount: number | null, cancelledAmount: number, currency: string, status: PaymentStatus, failReason: string | null, scheduledAt: string | null, paidAt: string | null, receiptUrl: string | null, createdAt: string, subscription: { id: string } | null }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export type LiveEventsSubscriptionVariables = Exact<{
  types?: Array<string> | string | null | undefined;
  customerUid?: string | null | undefined;
}>;


export type LiveEventsSubscription = { events: { id: string, type: string, customerUid: string | null, subscriptionId: string | null, merchantUid: string | null, createdAt: string, data: Record<string, unknown> } };

export const CardFieldsFragmentDoc = {"kind":"Document","definitions":[{"kind":"FragmentDefinition","name":{"kind":"Name","value":"CardFields"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Card"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"customerUid"}},{"kind":"Field","name":{"kind":"Name","value":"cardName"}},{"kind":"Field","name":{"kind":"Name","value":"cardNumberMasked"}},{"kind":"Field","name":{"kind":"Name","value":"cardType"}},{"kind":"Field","name":{"kind":"Name","value":"pgProvider"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}}]}}]} as unknown as DocumentNode<CardFieldsFragment, unknown>;
export const PaymentFieldsFragmentDoc = {"kind":"Document","definitions":[{"kind":"FragmentDefinition","name":{"kind":"Name","value":"PaymentFields"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Payment"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"merchantUid"}},{"kind":"Field","name":{"kind":"Name","value":"impUid"}},{"kind":"Field","name":{"kind":"Name","value":"customerUid"}},{"kind":"Field","name":{"kind":"Name","value":"name"}},{"kind":"Field","name":{"kind":"Name","value":"amount"}},{"kind":"Field","name":{"kind":"Name","value":"paidAmount"}},{"kind":"Field","name":{"kind":"Name","value":"cancelledAmount"}},{"kind":"Field","name":{"kind":"Name","value":"currency"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"failReason"}},{"kind":"Field","name":{"kind":"Name","value":"scheduledAt"}},{"kind":"Field","name":{"kind":"Name","value":"paidAt"}},{"kind":"Field","name":{"kind":"Name","value":"receiptUrl"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}}]}}]} as unknown as DocumentNode<PaymentFieldsFragment, unknown>;
export const RegisterCardDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"RegisterCard"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"input"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"RegisterCardInput"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"registerCard"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"input"},"value":{"kind":"Variable","name":{"kind":"Name","value":"input"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"CardFields"}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"CardFields"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Card"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"customerUid"}},{"kind":"Field","name":{"kind":"Name","value":"cardName"}},{"kind":"Field","name":{"kind":"Name","value":"cardNumberMasked"}},{"kind":"Field","name":{"kind":"Name","value":"cardType"}},{"kind":"Field","name":{"kind":"Name","value":"pgProvider"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}}]}}]} as unknown as DocumentNode<RegisterCardMutation, RegisterCardMutationVariables>;
export const StartSubscriptionDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"StartSubscription"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"input"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"StartSubscriptionInput"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"startSubscription"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"input"},"value":{"kind":"Variable","name":{"kind":"Name","value":"input"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"customerUid"}},{"kind":"Field","name":{"kind":"Name","value":"name"}},{"kind":"Field","name":{"kind":"Name","value":"amount"}},{"kind":"Field","name":{"kind":"Name","value":"interval"}},{"kind":"Field","name":{"kind":"Name","value":"intervalCount"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"statusReason"}},{"kind":"Field","name":{"kind":"Name","value":"currentPeriodStart"}},{"kind":"Field","name":{"kind":"Name","value":"currentPeriodEnd"}},{"kind":"Field","name":{"kind":"Name","value":"nextPaymentAt"}},{"kind":"Field","name":{"kind":"Name","value":"cancelAtPeriodEnd"}}]}}]}}]} as unknown as DocumentNode<StartSubscriptionMutation, StartSubscriptionMutationVariables>;
export const ListPaymentsDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"ListPayments"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"customerUid"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"subscriptionId"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"status"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"PaymentStatus"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"first"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"after"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"payments"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"customerUid"},"value":{"kind":"Variable","name":{"kind":"Name","value":"customerUid"}}},{"kind":"Argument","name":{"kind":"Name","value":"subscriptionId"},"value":{"kind":"Variable","name":{"kind":"Name","value":"subscriptionId"}}},{"kind":"Argument","name":{"kind":"Name","value":"status"},"value":{"kind":"Variable","name":{"kind":"Name","value":"status"}}},{"kind":"Argument","name":{"kind":"Name","value":"first"},"value":{"kind":"Variable","name":{"kind":"Name","value":"first"}}},{"kind":"Argument","name":{"kind":"Name","value":"after"},"value":{"kind":"Variable","name":{"kind":"Name","value":"after"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"nodes"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"PaymentFields"}},{"kind":"Field","name":{"kind":"Name","value":"subscription"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}}]}}]}},{"kind":"Field","name":{"kind":"Name","value":"pageInfo"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"hasNextPage"}},{"kind":"Field","name":{"kind":"Name","value":"endCursor"}}]}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"PaymentFields"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Payment"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"merchantUid"}},{"kind":"Field","name":{"kind":"Name","value":"impUid"}},{"kind":"Field","name":{"kind":"Name","value":"customerUid"}},{"kind":"Field","name":{"kind":"Name","value":"name"}},{"kind":"Field","name":{"kind":"Name","value":"amount"}},{"kind":"Field","name":{"kind":"Name","value":"paidAmount"}},{"kind":"Field","name":{"kind":"Name","value":"cancelledAmount"}},{"kind":"Field","name":{"kind":"Name","value":"currency"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"failReason"}},{"kind":"Field","name":{"kind":"Name","value":"scheduledAt"}},{"kind":"Field","name":{"kind":"Name","value":"paidAt"}},{"kind":"Field","name":{"kind":"Name","value":"receiptUrl"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}}]}}]} as unknown as DocumentNode<ListPaymentsQuery, ListPaymentsQueryVariables>;
export const LiveEventsDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"subscription","name":{"kind":"Name","value":"LiveEvents"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"types"}},"type":{"kind":"ListType","type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"customerUid"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"events"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"types"},"value":{"kind":"Variable","name":{"kind":"Name","value":"types"}}},{"kind":"Argument","name":{"kind":"Name","value":"customerUid"},"value":{"kind":"Variable","name":{"kind":"Name","value":"customerUid"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"type"}},{"kind":"Field","name":{"kind":"Name","value":"customerUid"}},{"kind":"Field","name":{"kind":"Name","value":"subscriptionId"}},{"kind":"Field","name":{"kind":"Name","value":"merchantUid"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}},{"kind":"Field","name":{"kind":"Name","value":"data"}}]}}]}}]} as unknown as DocumentNode<LiveEventsSubscription, LiveEventsSubscriptionVariables>;