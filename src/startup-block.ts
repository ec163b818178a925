/**
 * The few lines a development server prints once it is ready: where to click,
 * which key to send, where the emulator's control API is and how to start
 * over. Plain text, not a log record: it is read by a person, once, and stays
 * findable after the request logs scroll past (the key is also in its file).
 */
export interface StartupBlockInput {
  url: string;
  graphiqlEnabled: boolean;
  /** The generated development key and the file that keeps it (only when API_KEYS is unset in development). */
  devKey?: { key: string; file: string };
  /** The in-process emulator's base URL. */
  emulatorUrl?: string;
  /** The in-process emulator's PortOne V2 API (PAYMENT_PROVIDER=v2 without credentials). */
  portoneEmulatorUrl?: string;
  /** The embedded database's directory, when it is on disk (dev:reset applies). */
  dataDir?: string;
}

export function startupBlock(input: StartupBlockInput): string {
  const rows: [string, string][] = [];
  if (input.graphiqlEnabled) rows.push(["GraphiQL", `${input.url}/graphiql`]);
  rows.push(["GraphQL", `${input.url}/graphql`]);
  if (input.devKey) rows.push(["API key", `Authorization: Bearer ${input.devKey.key}  (development key, kept in ${input.devKey.file})`]);
  if (input.emulatorUrl) rows.push(["Iamport emulator", `${input.emulatorUrl}/__emulator  (control API: clock, faults; test cards only)`]);
  if (input.portoneEmulatorUrl) rows.push(["PortOne V2", `${input.portoneEmulatorUrl}  (the emulator's V2 API; webhooks to /portone-webhook)`]);
  if (input.dataDir) rows.push(["Reset dev state", `stop the server, then npm run dev:reset (deletes ${input.dataDir} and the emulator's state)`]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return ["", `Billing server ready on ${input.url}`, ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`), ""].join("\n") + "\n";
}
