import { GraphQLError, type GraphQLFormattedError } from "graphql";
import { unwrapResolverError } from "@apollo/server/errors";
import type { Logger } from "pino";
import { AppError, toAppError } from "../errors";
import { scrubText } from "../logger";

/**
 * graphql-js echoes the offending value in variable and literal coercion
 * errors ("got invalid value { cardNumber: ... }", "cannot represent a non
 * string value: 4242..."): the value may be card data, so only the location
 * and the expected type are kept.
 */
export function scrubCoercionMessage(message: string): string {
  return scrubText(
    message
      .replace(/got invalid value [\s\S]*?(?= at "|; |$)/, "got an invalid value")
      // Bounded: the echoed value is the caller's text and may repeat the phrase; an unbounded scan
      // from each repetition made a 100 kB message cost ~0.3 s (test/unit/graphql-errors.test.ts).
      .replace(/(cannot represent[^:;]{0,80}?value)(: [\s\S]*?)(?=; |$)/g, "$1")
      .replace(/(Expected value of type "[^"]+"), found [\s\S]*?(?=; |$)/g, "$1")
      .replace(/(Enum "[^"]+" cannot represent) [\s\S]*?(?=; |$)/g, "$1 this value"),
  );
}

/**
 * Maps errors once to `extensions.code`. AppErrors keep their message and
 * field; a database that timed out or went away is DATABASE_UNAVAILABLE
 * (toAppError); anything else becomes INTERNAL_SERVER_ERROR with a generic
 * message in every mode (a database error's message carries its statement and
 * values: payment ids, amounts, Iamport's JSON); the full error goes to the log.
 * GraphQL's own validation errors keep Apollo's codes.
 */
export function formatError(logger: Logger, opts: { hideSuggestions: boolean }) {
  const format = formatWith(logger);
  if (!opts.hideSuggestions) return format;
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const out = format(formatted, error);
    const message = withoutSuggestions(out.message);
    return message === out.message ? out : { ...out, message };
  };
}

const HINT = "Did you mean ";

/**
 * The message without graphql-js's hints at names the schema has ('Cannot
 * query field "paymnt" on type "Query". Did you mean "payment"?', also for
 * arguments, types, enum values and fragments): in production they would map
 * the schema that introspection hides. Each hint runs from "Did you mean " to
 * the next "?" (names cannot contain one). A plain scan, linear in the
 * message: the message can echo the caller's text, and a regex with a
 * leading `\s*` took seconds on a long run of spaces.
 */
export function withoutSuggestions(message: string): string {
  let at = message.indexOf(HINT);
  if (at < 0) return message;
  let out = "";
  let from = 0;
  while (at >= 0) {
    const end = message.indexOf("?", at + HINT.length);
    if (end < 0) break;
    out += message.slice(from, at > from && message.charCodeAt(at - 1) === 32 ? at - 1 : at);
    from = end + 1;
    at = message.indexOf(HINT, from);
  }
  return out + message.slice(from);
}

function formatWith(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    let original = unwrapResolverError(error);
    if (!(original instanceof AppError) && !(original instanceof GraphQLError)) {
      const mapped = toAppError(original);
      if (mapped.code !== "INTERNAL_SERVER_ERROR") {
        logger.warn({ err: original, code: mapped.code }, "GraphQL operation failed: the database did not answer");
        original = mapped;
      }
    }
    if (original instanceof AppError) {
      return {
        message: original.message,
        path: formatted.path,
        locations: formatted.locations,
        extensions: { code: original.code, ...original.details },
      };
    }
    const code = formatted.extensions?.code;
    if (code && code !== "INTERNAL_SERVER_ERROR") {
      // Parse/validation/variable errors: safe to show, never a stack trace.
      return { message: scrubCoercionMessage(formatted.message), locations: formatted.locations, path: formatted.path, extensions: { code } };
    }
    if (original instanceof GraphQLError && !original.originalError && !/^Cannot return null/.test(original.message)) {
      // Raised by graphql-js itself about the request (an argument null at execution, an
      // operation type the schema does not have): the caller's mistake, not ours.
      return {
        message: scrubCoercionMessage(formatted.message),
        locations: formatted.locations,
        path: formatted.path,
        extensions: { code: "BAD_USER_INPUT" },
      };
    }
    logger.error({ err: original }, "unexpected GraphQL error");
    return {
      message: "Internal server error",
      path: formatted.path,
      extensions: { code: "INTERNAL_SERVER_ERROR" },
    };
  };
}
