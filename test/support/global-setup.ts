import path from "node:path";

/** Compiles src/ to dist/ once before the suite when it is stale: process-level tests run the compiled server. */
export default function globalSetup(): void {
  // The same check `npm start` makes (scripts/build-if-stale.js): one definition of "stale".
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildIfStale } = require(path.resolve(__dirname, "../../scripts/build-if-stale.js")) as { buildIfStale(o: { quiet: boolean }): boolean };
  buildIfStale({ quiet: true });
}
