import "reflect-metadata";
import fs from "node:fs";
import { ConfigError, loadConfig } from "../config";
import { startEmbeddedDatabase, type EmbeddedDatabase } from "../db/embedded";
import { openOrm } from "../db/orm";
import { billingKeyLookup } from "../db/repositories/billing-keys";
import { ProviderMigrationRepository } from "../db/repositories/provider-migration";
import { IamportClient } from "../iamport/iamport.client";
import { createLogger } from "../logger";
import { migrateV1ToV2 } from "../billing/provider-migration";
import { IamportV1Provider } from "../provider/v1";
import { PortOneV2Provider } from "../provider/v2";

const USAGE = "usage: npm run migrate:v2 -- --mapping <file.json|file.csv> [--apply] [--margin-seconds N]";

/**
 * `npm run migrate:v2`: moves the live subscriptions from Iamport V1 to
 * PortOne V2 (src/billing/provider-migration.ts). A dry run unless --apply.
 * Needs both providers' credentials and PAYMENT_PROVIDER_MIGRATION=v1_to_v2.
 * The mapping is PortOne's V1→V2 billing-key migration's result: JSON
 * {"customer_uid": "billing-key", ...} or CSV lines customer_uid,billing_key.
 */
export function readMapping(file: string): Map<string, string> {
  const text = fs.readFileSync(file, "utf8");
  if (text.trimStart().startsWith("{")) {
    const obj = JSON.parse(text) as Record<string, unknown>;
    return new Map(Object.entries(obj).filter((e): e is [string, string] => typeof e[1] === "string" && e[1].length > 0));
  }
  const map = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const [uid, key] = line.split(",").map((s) => s.trim());
    if (!uid || !key || uid === "customer_uid") continue;
    map.set(uid, key);
  }
  return map;
}

async function main(argv: string[]): Promise<number> {
  const arg = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const mappingFile = arg("--mapping");
  if (!mappingFile) {
    console.error(USAGE);
    return 2;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
  if (config.migration !== "v1_to_v2") {
    console.error("migrate:v2 needs PAYMENT_PROVIDER_MIGRATION=v1_to_v2 with both IAMPORT_API_KEY/IAMPORT_API_SECRET and PORTONE_API_* set");
    return 1;
  }
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? "warn" });
  let embedded: EmbeddedDatabase | undefined;
  let url = config.databaseUrl;
  if (!url) {
    // The server must be stopped: the embedded database's directory takes one process at a time.
    embedded = await startEmbeddedDatabase({ dataDir: config.pgliteDataDir });
    url = embedded.url;
  }
  const orm = await openOrm(url, 2, logger, config.databaseTimeouts);
  try {
    const v1 = new IamportV1Provider(
      new IamportClient({ baseUrl: config.iamport.apiUrl!, apiKey: config.iamport.apiKey!, apiSecret: config.iamport.apiSecret!, timeoutMs: config.iamport.timeoutMs, logger }),
    );
    const v2 = new PortOneV2Provider({
      baseUrl: config.portone.apiUrl!,
      apiSecret: config.portone.apiSecret!,
      storeId: config.portone.storeId,
      channelKey: config.portone.channelKey!,
      webhookSecret: config.portone.webhookSecret!,
      timeoutMs: config.iamport.timeoutMs,
      logger,
      keys: billingKeyLookup(orm),
    });
    const margin = arg("--margin-seconds");
    const report = await migrateV1ToV2(
      { repo: new ProviderMigrationRepository(orm), v1, v2, logger },
      { mapping: readMapping(mappingFile), apply: argv.includes("--apply"), marginSeconds: margin ? Number(margin) : undefined },
    );
    for (const a of report.actions) {
      const what =
        a.kind === "map-key"
          ? `map-key        ${a.customerUid} -> ${a.billingKey}`
          : a.kind === "re-register"
            ? `re-register    ${a.customerUid} (no V2 billing key in the mapping: the customer registers the card again)`
            : a.kind === "move-schedule"
              ? `move-schedule  ${a.merchantUid} of ${a.customerUid} at ${a.scheduledAt.toISOString()}`
              : `wait           ${a.merchantUid} of ${a.customerUid} at ${a.scheduledAt.toISOString()}: ${a.reason}`;
      console.log(what);
    }
    const switchBy = report.switchBy ? ` Switch the server to V2 (remove the V1 credentials and PAYMENT_PROVIDER_MIGRATION, restart) before ${report.switchBy.toISOString()}, the first moved charge's time.` : "";
    if (!report.applied) {
      console.log(`dry run: ${report.actions.length} action(s); nothing changed. Run again with --apply.${switchBy}`);
      return 0;
    }
    for (const r of report.results) console.log(`${r.ref}: ${r.outcome}`);
    if (switchBy) console.log(switchBy.trim());
    return report.results.every((r) => /^(ok|kept)/.test(r.outcome)) ? 0 : 1;
  } finally {
    await orm.close(true);
    await embedded?.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
