import { ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import axios from "axios";

/*
 * Server processes for the tests that need a real process to die: the
 * compiled server (decorator metadata needs tsc) started as a child with its
 * own environment, its output kept for diagnostics, and a stop that always
 * ends with the process gone.
 */

export const ROOT = path.resolve(__dirname, "../..");

/** A port that was free a moment ago (the OS picks it; the listener is closed again). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  child: ChildProcess;
  /** The last lines of its stdout and stderr. */
  output: string[];
  /** Resolves when the process has exited: its exit code and the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node <main>` in `cwd` with the test process's environment plus `env` (without jest's NODE_OPTIONS). */
export function spawnServer(main: string, env: Record<string, string>, keepLines = 400, cwd = ROOT): ServerProcess {
  const { NODE_OPTIONS: _ignored, ...inherited } = process.env;
  const child = spawn(process.execPath, [main], { cwd, env: { ...inherited, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(...String(chunk).split("\n").filter(Boolean));
    if (output.length > keepLines) output.splice(0, output.length - keepLines);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, output, exited };
}

export function isRunning(proc: ServerProcess): boolean {
  return proc.child.exitCode === null && proc.child.signalCode === null;
}

/** Waits until the process answers /healthz on `url`; fails with its last output if it exits first. */
export async function waitHealthy(url: string, proc: ServerProcess, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (!isRunning(proc)) throw new Error(`the server exited:\n${proc.output.slice(-40).join("\n")}`);
    const r = await axios.get(`${url}/healthz`, { validateStatus: () => true, timeout: 1000 }).catch(() => null);
    if (r?.status === 200) return;
    if (Date.now() > until) throw new Error(`the server did not become healthy on ${url}:\n${proc.output.slice(-40).join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then SIGKILL if it is still there after `graceMs`; resolves once the process is gone. */
export async function stopServer(proc: ServerProcess, graceMs = 10_000): Promise<void> {
  if (!isRunning(proc)) return;
  proc.child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([proc.exited, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
  clearTimeout(timer);
  if (isRunning(proc)) {
    proc.child.kill("SIGKILL");
    await proc.exited;
  }
}
