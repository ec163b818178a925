#!/usr/bin/env node
/**
 * Compiles the emulator package (packages/iamport-emulator/src to its dist/),
 * then src/ to dist/, with tsc, only when something they are built from changed
 * since the last build: `npm start` and the test suite's global setup call it,
 * so a restart with nothing changed starts at once instead of type-checking
 * the whole program again. `npm run build` (--force) always compiles.
 * The emulator comes first: the server's build reads its declarations.
 * `--run dist/main.js` then runs that compiled file in this same process
 * (`npm start`), which spares a restart the boot of a second Node process.
 */
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
/** Written after each successful build; its time is the build's. */
const STAMP = path.join(root, "dist", ".build-stamp");
const EMULATOR = path.join("packages", "iamport-emulator");
const INPUTS = [
  "src",
  "tsconfig.json",
  "tsconfig.build.json",
  "package.json",
  "package-lock.json",
  path.join(EMULATOR, "src"),
  path.join(EMULATOR, "package.json"),
  path.join(EMULATOR, "tsconfig.json"),
  path.join(EMULATOR, "tsconfig.build.json"),
];
/** What `npm start` and `npm run emulator` run: missing means stale whatever the times say. */
const OUTPUTS = [path.join("dist", "main.js"), path.join(EMULATOR, "dist", "main.js")];

function newestMtime(p) {
  if (!fs.existsSync(p)) return 0;
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs; // a deleted or renamed file changes its directory's time
  for (const entry of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, entry)));
  return newest;
}

/** True when dist/ is missing or older than any of its inputs. */
function stale() {
  if (!fs.existsSync(STAMP) || OUTPUTS.some((output) => !fs.existsSync(path.join(root, output)))) return true;
  const built = fs.statSync(STAMP).mtimeMs;
  return INPUTS.some((input) => newestMtime(path.join(root, input)) > built);
}

function buildIfStale({ quiet = false, force = false } = {}) {
  if (!force && !stale()) {
    if (!quiet) console.log("dist/ is up to date with src/: starting without a build (npm run build forces one)");
    return false;
  }
  if (!quiet) console.log(force ? "building dist/ with tsc..." : "building dist/ with tsc (src/ changed since the last build)...");
  const started = Date.now();
  const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", path.join(EMULATOR, "tsconfig.build.json")], { cwd: root, stdio: "inherit" });
  execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
  fs.writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  if (!quiet) console.log(`built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

module.exports = { buildIfStale, stale };

if (require.main === module) {
  const args = process.argv.slice(2);
  try {
    buildIfStale({ force: args.includes("--force") });
  } catch {
    // tsc has printed its errors.
    process.exit(1);
  }
  const run = args.indexOf("--run");
  if (run >= 0) {
    if (!args[run + 1]) {
      console.error("--run needs the compiled file to run, e.g. --run dist/main.js");
      process.exit(1);
    }
    require(path.resolve(root, args[run + 1]));
  }
}
