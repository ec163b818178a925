import "reflect-metadata";
import fs from "node:fs";
import path from "node:path";
import { printBillingSchema } from "../graphql/schema";

/** `npm run schema`: writes the schema built from the resolvers to ./schema.graphql. */
const target = path.resolve(process.cwd(), "schema.graphql");
fs.writeFileSync(target, printBillingSchema());
console.log(`Wrote ${target}`);
