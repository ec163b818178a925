import fs from "node:fs";
import path from "node:path";

/**
 * The package is published and run on its own (npx, its Docker stage): its
 * source may import only Node's modules, its own files and the dependencies its
 * package.json declares, never the billing server that hosts it in this repository.
 */
const PKG = path.resolve(__dirname, "..");
const SRC = path.join(PKG, "src");

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

const specifiers = (text: string) => [...text.matchAll(/(?:from\s+|import\s+|import\s*\(\s*|require\s*\(\s*)["']([^"']+)["']/g)].map((m) => m[1]);

it("imports only Node's modules, its own files and its declared dependencies", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(PKG, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  const declared = new Set(Object.keys(pkg.dependencies));
  const outside: string[] = [];
  const files = sourceFiles(SRC);
  for (const file of files) {
    for (const spec of specifiers(fs.readFileSync(file, "utf8"))) {
      if (spec.startsWith("node:")) continue;
      if (spec.startsWith(".")) {
        if (path.resolve(path.dirname(file), spec).startsWith(SRC + path.sep)) continue;
      } else if (declared.has(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0])) continue;
      outside.push(`${path.relative(PKG, file)}: ${spec}`);
    }
  }
  expect(files.length).toBeGreaterThan(10);
  expect(outside).toEqual([]);
});
