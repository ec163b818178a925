import { Readable } from "node:stream";
import { type ApolloServer, type BaseContext, HeaderMap } from "@apollo/server";
import type { FastifyReply, FastifyRequest, RouteHandlerMethod } from "fastify";

/**
 * /graphql: the request as Apollo Server reads it, and its answer. Written
 * here rather than taken from @as-integrations/fastify, whose request mapping
 * drops headers sent empty (an empty Idempotency-Key must be refused, not
 * ignored) and builds a URL from the Host header, which a malformed Host made
 * a 500.
 */
export function graphqlHandler<TContext extends BaseContext>(
  apollo: ApolloServer<TContext>,
  context: (req: FastifyRequest, reply: FastifyReply) => Promise<TContext>,
): RouteHandlerMethod {
  apollo.assertStarted("graphqlHandler()");
  return async (req, reply) => {
    const headers = new HeaderMap();
    for (const key in req.headers) {
      const value = req.headers[key];
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(", ") : value);
    }
    const queryStart = req.url.indexOf("?");
    const answer = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: req.method, headers, search: queryStart < 0 ? "" : req.url.slice(queryStart), body: req.body },
      context: () => context(req, reply),
    });
    for (const [key, value] of answer.headers) reply.header(key, value);
    reply.code(answer.status ?? 200);
    if (answer.body.kind === "complete") return reply.send(answer.body.string);
    // Incremental delivery (@defer): chunks as Apollo yields them.
    return reply.send(Readable.from(answer.body.asyncIterator));
  };
}
