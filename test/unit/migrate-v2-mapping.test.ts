import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { readMapping } from "../../src/scripts/migrate-v2";

/** npm run migrate:v2's mapping file: PortOne's V1→V2 billing-key migration result, as JSON or CSV. */
describe("readMapping", () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "migrate-v2-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };

  it("reads JSON {customer_uid: billing_key}, leaving out empty and non-text keys", () => {
    const m = readMapping(file("keys.json", JSON.stringify({ c1: "billing-key-1", c2: "", c3: 5, c4: "billing-key-4" })));
    expect([...m]).toEqual([
      ["c1", "billing-key-1"],
      ["c4", "billing-key-4"],
    ]);
  });

  it("reads CSV lines customer_uid,billing_key: a header, blank lines, CRLF and spaces are tolerated", () => {
    const m = readMapping(file("keys.csv", "customer_uid,billing_key\r\n c1 , billing-key-1\r\n\r\nc2,\nc3,billing-key-3\n"));
    expect([...m]).toEqual([
      ["c1", "billing-key-1"],
      ["c3", "billing-key-3"],
    ]);
  });
});
