import type { GraphQLFormattedError } from "graphql";
import { unwrapResolverError } from "@apollo/server/errors";
import type { Logger } from "pino";
import { AppError } from "../errors";

/**
 * Maps errors once to `extensions.code`. AppErrors keep their message and
 * field; anything else becomes INTERNAL_SERVER_ERROR without details (logged).
 * GraphQL's own validation errors keep Apollo's codes.
 */
export function formatError(logger: Logger, exposeDetails: boolean) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = unwrapResolverError(error);
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
      return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code } };
    }
    logger.error({ err: original }, "unexpected GraphQL error");
    return {
      message: exposeDetails && original instanceof Error ? original.message : "Internal server error",
      path: formatted.path,
      extensions: { code: "INTERNAL_SERVER_ERROR" },
    };
  };
}
