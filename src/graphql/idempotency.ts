import crypto from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { HeaderMap, type ApolloServerPlugin, type GraphQLResponse } from "@apollo/server";
import { Kind, print, type GraphQLFormattedError, type OperationDefinitionNode } from "graphql";
import type { IdempotencyStore, StoredAnswer } from "../db/repositories/idempotency-keys";
import { AppError, BadUserInputError, ConflictError, DatabaseUnavailableError, httpStatusOf } from "../errors";
import type { Caller, GraphQLContext } from "./context";

export const IDEMPOTENCY_HEADER = "idempotency-key";
/** Set on an answer that is the stored answer of an earlier request with the same key. */
export const REPLAYED_HEADER = "idempotent-replayed";
/** How long a key and its answer are kept. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

/** 1 to 255 printable ASCII characters (a UUID is the usual choice). */
const VALID_KEY = /^[\x20-\x7e]{1,255}$/;

/**
 * Codes after which running the same request again is how the caller gets an
 * answer: the claim is released instead of storing them. Re-running is safe:
 * ids the request generates derive from its key (billing/context.ts derivedId),
 * and orders are charged at most once per merchant_uid.
 */
const RETRYABLE = new Set(["UPSTREAM_UNAVAILABLE", "OUTCOME_UNKNOWN", "DATABASE_UNAVAILABLE", "INTERNAL_SERVER_ERROR"]);

/** Mutations that change nothing: a replay would hand out a token minted earlier (and perhaps expired since). */
const NOT_REPLAYED = new Set(["createCustomerToken", "__typename"]);

export interface IdempotencyOptions {
  store: IdempotencyStore;
  /** Keys the request fingerprints (HMAC): the table holds nothing a card number could be tested against. */
  secret: string;
  /** How long a duplicate waits for the request in progress before it is told to retry later. */
  waitMs: number;
  /** After this long a claim still in progress is abandoned (its process died) and taken over. */
  leaseMs: number;
  /** The server's formatError: the plugin's own errors are shaped like every other error. */
  formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError;
}

/** Whose keys these are: two callers' keys never meet. Every merchant API key acts for the one merchant. */
function scopeOf(caller: Caller): string {
  return caller.kind === "merchant" ? "merchant" : `customer:${caller.customerUid}`;
}

/** JSON with every object's keys sorted: the same variables in another order are the same request. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value ?? {}, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

function onlyNotReplayed(operation: OperationDefinitionNode): boolean {
  return operation.selectionSet.selections.every((s) => s.kind === Kind.FIELD && NOT_REPLAYED.has(s.name.value));
}

/**
 * `Idempotency-Key` on /graphql mutations, as an Apollo plugin (so it sees the
 * parsed operation and the final answer). The first request with a
 * key claims it and runs; a duplicate arriving meanwhile waits (polling,
 * holding no connection) and gets the same answer; later ones get the stored
 * answer for 24 hours, with `Idempotent-Replayed: true`. The same key with a
 * different request (document, operation name or variables) is CONFLICT.
 * Only final answers are stored: a retryable error releases the key, so the
 * retry runs again. Queries ignore the header.
 */
export function idempotencyPlugin(opts: IdempotencyOptions): ApolloServerPlugin<GraphQLContext> {
  const hmacKey = crypto.createHash("sha256").update("idempotency-key fingerprint\0").update(opts.secret).digest();
  const hmac = (...parts: string[]) => crypto.createHmac("sha256", hmacKey).update(parts.join("\0")).digest("hex");
  const claimOptions = { ttlSeconds: IDEMPOTENCY_TTL_SECONDS, leaseMs: opts.leaseMs };

  const errorResponse = (err: AppError): GraphQLResponse => ({
    http: { status: httpStatusOf(err.code), headers: new HeaderMap() },
    body: { kind: "single", singleResult: { errors: [opts.formatError({ message: err.message }, err)] } },
  });
  const replay = (answer: StoredAnswer): GraphQLResponse => ({
    http: { status: answer.status, headers: new HeaderMap([[REPLAYED_HEADER, "true"]]) },
    body: { kind: "single", singleResult: JSON.parse(answer.body) },
  });

  return {
    async requestDidStart() {
      let held: { scope: string; key: string; owner: string } | undefined;
      return {
        async responseForOperation(rc) {
          const operation = rc.operation;
          if (operation?.operation !== "mutation") return null;
          const key = rc.request.http?.headers.get(IDEMPOTENCY_HEADER);
          if (key === undefined) return null;
          if (!VALID_KEY.test(key)) return errorResponse(new BadUserInputError("Idempotency-Key", "must be 1 to 255 printable ASCII characters"));
          if (onlyNotReplayed(operation)) return null;

          const scope = scopeOf(rc.contextValue.caller);
          const requestHash = hmac("request", scope, print(rc.document), rc.request.operationName ?? "", canonicalJson(rc.request.variables));
          const until = Date.now() + opts.waitMs;
          let delay = 20;
          try {
            for (;;) {
              const found = await opts.store.claim(scope, key, requestHash, claimOptions);
              if (found.kind === "claimed") {
                held = { scope, key, owner: found.owner };
                rc.contextValue.idempotency = { ref: hmac("ref", scope, key, requestHash), generated: 0 };
                return null;
              }
              if (found.kind === "done") return replay(found.answer);
              if (found.kind === "mismatch") {
                return errorResponse(new ConflictError("This Idempotency-Key was already used for a different request: use a new key for a new request"));
              }
              if (Date.now() >= until) {
                return errorResponse(
                  new ConflictError("A request with this Idempotency-Key is still in progress: retry it later for its answer", { retryable: true }),
                );
              }
              await sleep(delay);
              delay = Math.min(delay * 2, 250);
            }
          } catch (err) {
            rc.contextValue.log.warn({ err: (err as Error).message }, "idempotency key could not be claimed");
            return errorResponse(new DatabaseUnavailableError());
          }
        },

        async willSendResponse(rc) {
          if (!held) return;
          const { scope, key, owner } = held;
          held = undefined;
          const body = rc.response.body;
          const result = body.kind === "single" ? body.singleResult : undefined;
          const retry = !result || (result.errors ?? []).some((e) => RETRYABLE.has(String(e.extensions?.code)) || e.extensions?.retryable === true);
          try {
            if (retry) await opts.store.release(scope, key, owner);
            else if (!(await opts.store.complete(scope, key, owner, { status: rc.response.http.status ?? 200, body: JSON.stringify(result) }))) {
              rc.contextValue.log.warn("idempotency key was taken over while its request ran; its answer is not stored");
            }
          } catch (err) {
            // The claim stays in progress until its lease ends; the request is then run again (derived ids keep that safe).
            rc.contextValue.log.warn({ err: (err as Error).message }, "idempotency key answer could not be stored");
          }
        },
      };
    },
  };
}
