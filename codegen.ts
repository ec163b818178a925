import type { CodegenConfig } from "@graphql-codegen/cli";

/**
 * GraphQL Code Generator: typed document nodes for the example merchant client
 * (examples/merchant-client), from the checked-in schema.graphql and the client's operations.graphql.
 *
 * `npm run codegen` rewrites examples/merchant-client/generated/ (checked in);
 * `npm run codegen:check` fails when it is stale, and so does test/dx/codegen.test.ts,
 * which generates into CODEGEN_OUT_DIR (a temporary directory) and compares.
 */
const outDir = process.env.CODEGEN_OUT_DIR || "examples/merchant-client/generated";

const config: CodegenConfig = {
  schema: "schema.graphql",
  documents: ["examples/merchant-client/operations.graphql"],
  ignoreNoDocuments: false,
  generates: {
    [`${outDir}/graphql.ts`]: {
      // typescript-operations (v6) emits the enums and inputs the operations use, so no "typescript" plugin.
      plugins: ["typescript-operations", "typed-document-node"],
      config: {
        // JSON: an event's data, an object (the payment, subscription or card as the API shows it).
        scalars: { DateTime: "string", JSON: "Record<string, unknown>" },
        enumType: "string-literal",
        useTypeImports: true,
        skipTypename: true,
      },
    },
  },
};

export default config;
