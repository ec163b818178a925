/**
 * Demo of live updates: prints each event as the server commits it.
 *
 *   npm start                                   # in another terminal
 *   npm run example:live                        # then run npm run example:client, or use GraphiQL
 *
 * BILLING_URL and BILLING_API_KEY as for npm run example:client; CUSTOMER_UID (optional) keeps to
 * one customer's events, EVENT_TYPES (optional, comma-separated) to some types; LIVE_LIMIT (optional)
 * stops after that many events. Ctrl-C stops it.
 */
import fs from "node:fs";
import { createLiveEvents } from "./live";

const url = process.env.BILLING_URL ?? "http://localhost:4000/graphql";

function devKey(): string | undefined {
  try {
    return fs.readFileSync(".data/dev-key", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

const apiKey = process.env.BILLING_API_KEY ?? devKey();
if (!apiKey) {
  console.error("Set BILLING_API_KEY to one of the server's API_KEYS (a development server keeps its key in ./.data/dev-key).");
  process.exit(2);
}
const limit = process.env.LIVE_LIMIT ? Number(process.env.LIVE_LIMIT) : Infinity;
const types = process.env.EVENT_TYPES ? process.env.EVENT_TYPES.split(",").map((t) => t.trim()) : undefined;

const live = createLiveEvents(url, apiKey);
let seen = 0;
const stop = live.subscribe(
  { customerUid: process.env.CUSTOMER_UID, types },
  (event) => {
    const status = typeof event.data.status === "string" ? ` ${event.data.status}` : "";
    console.log(`event ${event.id}: ${event.type} ${event.customerUid ?? "-"}${event.merchantUid ? ` ${event.merchantUid}` : ""}${status}`);
    if (++seen >= limit) {
      stop();
      void live.close().then(() => process.exit(0));
    }
  },
  (err) => {
    const code = (err as { code?: unknown })?.code;
    if (code === 4403) console.error("The server refused the credentials: set BILLING_API_KEY to one of its API_KEYS.");
    else console.error(`Cannot follow events at ${url}:`, Array.isArray(err) ? JSON.stringify(err) : (err as Error)?.message ?? err);
    process.exit(1);
  },
);
console.log(`listening for events at ${url.replace(/^http/, "ws")}${process.env.CUSTOMER_UID ? ` (customer ${process.env.CUSTOMER_UID})` : ""}; Ctrl-C stops`);
process.on("SIGINT", () => {
  stop();
  void live.close().then(() => process.exit(0));
});
