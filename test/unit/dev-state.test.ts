import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadOrCreateDevKey } from "../../src/dev-state";
import { startupBlock } from "../../src/startup-block";

describe("the development key file", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "billing-devkey-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("is created once (owner-only) and read back afterwards", () => {
    const file = path.join(dir, ".data/dev-key");
    const first = loadOrCreateDevKey(file);
    expect(first.created).toBe(true);
    expect(first.key).toMatch(/^dev_[A-Za-z0-9_-]{16,}$/);
    expect(fs.statSync(file).mode & 0o077).toBe(0);
    const again = loadOrCreateDevKey(file);
    expect(again).toEqual({ key: first.key, file, created: false });
  });

  it("replaces a file that holds no key", () => {
    const file = path.join(dir, "dev-key");
    fs.writeFileSync(file, "paste your key here\n");
    const k = loadOrCreateDevKey(file);
    expect(k.created).toBe(true);
    expect(fs.readFileSync(file, "utf8").trim()).toBe(k.key);
  });
});

describe("the ready block", () => {
  it("shows only what applies: no key line when API_KEYS is set, no emulator or reset line without them", () => {
    const full = startupBlock({
      url: "http://localhost:4000",
      graphiqlEnabled: true,
      devKey: { key: "dev_abcdefghijklmnopqrstuv", file: "./.data/dev-key" },
      emulatorUrl: "http://127.0.0.1:4010",
      dataDir: "./.data/pglite",
    });
    expect(full).toContain("Authorization: Bearer dev_abcdefghijklmnopqrstuv");
    expect(full).toContain("http://127.0.0.1:4010/__emulator");
    expect(full).toContain("npm run dev:reset (deletes ./.data/pglite");
    const bare = startupBlock({ url: "http://localhost:4000", graphiqlEnabled: false });
    expect(bare.trim().split("\n")).toEqual(["Billing server ready on http://localhost:4000", "  GraphQL  http://localhost:4000/graphql"]);
  });
});
