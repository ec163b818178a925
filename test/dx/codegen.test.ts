/**
 * The typed client's generated code (examples/merchant-client/generated/) is checked in: it must be
 * exactly what GraphQL Code Generator makes from today's schema.graphql and operations.graphql.
 * The generator runs as a child process (its CLI is ESM) into a temporary directory (CODEGEN_OUT_DIR,
 * read by codegen.ts), and the two trees are compared file by file.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const root = path.resolve(__dirname, "../..");
const checkedIn = path.join(root, "examples/merchant-client/generated");

function listFiles(dir: string, base = dir): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))]))
    .sort();
}

function firstDifference(a: string, b: string): string {
  const la = a.split("\n");
  const lb = b.split("\n");
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return `line ${i + 1}:\n  checked in: ${la[i] ?? "<end of file>"}\n  generated:  ${lb[i] ?? "<end of file>"}`;
  }
  return "no difference";
}

describe("typed client code generation", () => {
  let out: string;
  beforeAll(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "billing-codegen-"));
  });
  afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

  it("examples/merchant-client/generated/ is up to date with schema.graphql and operations.graphql (else: npm run codegen)", () => {
    const pkg = path.dirname(require.resolve("@graphql-codegen/cli/package.json"));
    const { bin: bins } = JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")) as { bin: Record<string, string> };
    const bin = path.join(pkg, bins["graphql-codegen"]);
    const env: NodeJS.ProcessEnv = { ...process.env, CODEGEN_OUT_DIR: out };
    delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the generator
    execFileSync(process.execPath, [bin, "--config", "codegen.ts", "--silent"], { cwd: root, env, stdio: "pipe", timeout: 60_000 });

    const generated = listFiles(out);
    expect(generated.length).toBeGreaterThan(0);
    expect(listFiles(checkedIn)).toEqual(generated);
    for (const file of generated) {
      const want = fs.readFileSync(path.join(out, file), "utf8");
      const have = fs.readFileSync(path.join(checkedIn, file), "utf8");
      if (have !== want) {
        throw new Error(`examples/merchant-client/generated/${file} is stale: run \`npm run codegen\` and commit the result.\nFirst difference at ${firstDifference(have, want)}`);
      }
    }
  }, 90_000);
});
