import "reflect-metadata";
import fs from "node:fs";
import path from "node:path";
import { buildSchema, findBreakingChanges, findDangerousChanges } from "graphql";
import { buildBillingSchema, printBillingSchema } from "../../src/graphql/schema";

const root = path.resolve(__dirname, "../..");

describe("schema.graphql", () => {
  it("is the schema the code builds (run `npm run schema` after changing resolvers or types)", () => {
    const checkedIn = fs.readFileSync(path.join(root, "schema.graphql"), "utf8");
    expect(checkedIn).toBe(printBillingSchema());
  });

  it("is a non-breaking superset of the public contract", () => {
    // test/fixtures/contract.graphql is a copy of the published contract (the shared folder is not shipped).
    const contract = buildSchema(fs.readFileSync(path.join(__dirname, "../fixtures/contract.graphql"), "utf8"));
    const breaking = findBreakingChanges(contract, buildBillingSchema());
    expect(breaking).toEqual([]);
  });

  it("only adds to the contract's enums, arguments and input fields (dangerous changes are listed here on purpose)", () => {
    const contract = buildSchema(fs.readFileSync(path.join(__dirname, "../fixtures/contract.graphql"), "utf8"));
    const dangerous = findDangerousChanges(contract, buildBillingSchema()).map((c) => c.description);
    expect(dangerous).toEqual([
      "INCOMPLETE was added to enum type SubscriptionStatus.",
      // Optional: a client that omits it is served as before, except that replacing an active card needs it.
      "An optional field replace on input type RegisterCardInput was added.",
      // Plans (lifecycle.graphql): name, amount and interval may then be omitted.
      "An optional field planCode on input type StartSubscriptionInput was added.",
      "An optional field allowDuplicate on input type StartSubscriptionInput was added.",
      "An optional arg cancelSubscriptions on Mutation.deleteCard was added.",
    ]);
  });

  it("is a non-breaking superset of the contract with its events additions", () => {
    // test/fixtures/contract-events.graphql is a copy of the published events.graphql, applied on top of the contract.
    const fixtures = path.join(__dirname, "../fixtures");
    const contract = buildSchema(
      fs.readFileSync(path.join(fixtures, "contract.graphql"), "utf8") + "\n" + fs.readFileSync(path.join(fixtures, "contract-events.graphql"), "utf8"),
    );
    expect(findBreakingChanges(contract, buildBillingSchema())).toEqual([]);
  });

  it("detects a breaking change (the check is not vacuous)", () => {
    const contract = buildSchema(fs.readFileSync(path.join(__dirname, "../fixtures/contract.graphql"), "utf8"));
    const broken = buildSchema(printBillingSchema().replace("merchantUid: String!\n", "merchantUid: Int!\n"));
    expect(findBreakingChanges(contract, broken).length).toBeGreaterThan(0);
  });
});
