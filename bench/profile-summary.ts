/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --profile DIR`, which
 * runs the server with `node --cpu-prof`): where the CPU time went, by package
 * (self and inclusive: time with that package anywhere on the stack) and by
 * function.
 *
 * Usage: node dist/bench/profile-summary.js DIR/server-read-small.cpuprofile [top=25]
 */
import fs from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** node_modules package, a file of this project, node internals, or a V8 pseudo-frame. */
function where(url: string, name: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.startsWith("node:")) return "node:" + url.slice(5).split("/")[0];
  const d = /\/dist\/(.*)$/.exec(url);
  if (d) return `dist/${d[1]}`;
  return url.replace(/^file:\/\//, "");
}

function main(): void {
  const file = process.argv[2];
  const top = Number(process.argv[3] ?? 25);
  if (!file) throw new Error("usage: profile-summary <file.cpuprofile> [top]");
  const p = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const selfByPkg = new Map<string, number>();
  const inclByPkg = new Map<string, number>();
  const selfByFn = new Map<string, number>();
  const inclByFn = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i] ?? 0) / 1000; // ms
    const leaf = byId.get(p.samples[i]);
    if (!leaf) continue;
    if (leaf.callFrame.functionName === "(idle)") {
      idle += dt;
      continue;
    }
    total += dt;
    const pkg = where(leaf.callFrame.url, leaf.callFrame.functionName);
    selfByPkg.set(pkg, (selfByPkg.get(pkg) ?? 0) + dt);
    const fn = `${leaf.callFrame.functionName || "(anonymous)"} ${where(leaf.callFrame.url, leaf.callFrame.functionName)}:${leaf.callFrame.lineNumber + 1}`;
    selfByFn.set(fn, (selfByFn.get(fn) ?? 0) + dt);
    const pkgs = new Set<string>();
    const fns = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id)!;
      if (n.callFrame.functionName === "(root)") break;
      pkgs.add(where(n.callFrame.url, n.callFrame.functionName));
      fns.add(`${n.callFrame.functionName || "(anonymous)"} ${where(n.callFrame.url, n.callFrame.functionName)}:${n.callFrame.lineNumber + 1}`);
    }
    for (const k of pkgs) inclByPkg.set(k, (inclByPkg.get(k) ?? 0) + dt);
    for (const k of fns) inclByFn.set(k, (inclByFn.get(k) ?? 0) + dt);
  }
  const wall = (p.endTime - p.startTime) / 1000;
  console.log(`${file}: ${(wall / 1000).toFixed(1)} s profiled, ${(total / 1000).toFixed(1)} s on CPU, ${(idle / 1000).toFixed(1)} s idle`);
  const show = (title: string, m: Map<string, number>) => {
    console.log(`\n${title}`);
    for (const [k, v] of [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(2).padStart(7)} s  ${k}`);
    }
  };
  show("self time by package", selfByPkg);
  show("inclusive time by package (anywhere on the stack)", inclByPkg);
  show("self time by function", selfByFn);
  show("inclusive time by function", inclByFn);
}

main();
