/**
 * Child processes of the benchmark: the server, the emulator, the reference
 * servers and the embedded database each run in their own node process, so
 * that their CPU and memory can be told apart (and profiled).
 */
import { ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";

export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** The last lines the child printed (shown when it fails). */
  tail(): string;
  /** Resolves with the first line matching `pattern` (or rejects when the child exits first). */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Throws when the child exited although nobody stopped it. */
  assertAlive(): void;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const children = new Set<Child>();

/** Starts `node [nodeArgs] script args` with `env` added to this process's environment. */
export function startChild(name: string, script: string, opts: { args?: string[]; env?: Record<string, string | undefined>; nodeArgs?: string[] } = {}): Child {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...(opts.args ?? [])], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  let stopping = false;
  const exited = new Promise<void>((resolve) => {
    proc.on("exit", (code, signal) => {
      exit = { code, signal };
      resolve();
    });
  });
  const onData = (prefix: string) => {
    let partial = "";
    return (chunk: Buffer) => {
      const text = partial + chunk.toString("utf8");
      const parts = text.split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(`${prefix}${line}`);
        if (lines.length > 200) lines.shift();
        for (const w of [...waiters]) {
          const m = w.pattern.exec(line);
          if (m) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(m);
          }
        }
      }
    };
  };
  proc.stdout!.on("data", onData(""));
  proc.stderr!.on("data", onData("stderr: "));

  const child: Child = {
    name,
    pid: proc.pid!,
    proc,
    tail: () => lines.slice(-40).join("\n"),
    waitForLine(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${child.tail()}`)), timeoutMs);
        const w = {
          pattern,
          resolve: (m: RegExpMatchArray) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        waiters.push(w);
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`${name} exited (${JSON.stringify(exit)}) before printing ${pattern}:\n${child.tail()}`));
        });
      });
    },
    assertAlive() {
      if (exit && !stopping) throw new Error(`${name} exited unexpectedly (${JSON.stringify(exit)}):\n${child.tail()}`);
    },
    async stop(graceMs = 15_000) {
      stopping = true;
      if (children.delete(child)) {
        stopped.push(child);
        if (stopped.length > 6) stopped.shift();
      }
      if (exit) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  children.add(child);
  return child;
}

/** Stops every child still running (on errors and at exit). */
/** The children stopped last: a failure's `finally` stops them before the crash is reported. */
const stopped: Child[] = [];

/** What the children still running, and the ones stopped last, printed last (for a crash report). */
export function childTails(): string {
  return [...stopped, ...children].map((c) => `--- ${c.name} (pid ${c.pid}), last lines:\n${c.tail() || "(nothing)"}`).join("\n");
}

export async function stopAllChildren(): Promise<void> {
  await Promise.all([...children].map((c) => c.stop(5_000).catch(() => undefined)));
}

/** A port that was free a moment ago (the server needs its own URL before it starts, for PUBLIC_URL). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Waits until GET url answers 200, checking that the child is still alive. */
export async function waitHttpOk(url: string, child: Child, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    child.assertAlive();
    const status = await new Promise<number>((resolve) => {
      const req = http.get(url, { timeout: 2_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", () => resolve(0));
      req.on("timeout", () => req.destroy());
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${child.name} not ready at ${url} within ${timeoutMs} ms:\n${child.tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** VmRSS and VmHWM (peak RSS) of a process, in MiB; null when /proc is not there. */
export function memoryOf(pid: number): { rssMiB: number; peakMiB: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    return { rssMiB: kb("VmRSS") / 1024, peakMiB: kb("VmHWM") / 1024 };
  } catch {
    return null;
  }
}

/** Samples VmRSS every `everyMs` until stopped; returns the largest value and the final VmHWM. */
export function sampleMemory(pid: number, everyMs = 100): { stop(): { maxRssMiB: number; peakMiB: number } } {
  let max = 0;
  const tick = () => {
    const m = memoryOf(pid);
    if (m && m.rssMiB > max) max = m.rssMiB;
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      const m = memoryOf(pid);
      return { maxRssMiB: max, peakMiB: m ? m.peakMiB : max };
    },
  };
}

/** Load average of this machine (1, 5, 15 minutes) from /proc/loadavg. */
export function loadAverage(): number[] {
  try {
    return fs.readFileSync("/proc/loadavg", "utf8").trim().split(/\s+/).slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

/** CPU time (user + system) a process has used so far, in seconds; null when /proc is not there. */
export function cpuSecondsOf(pid: number): number | null {
  const t = cpuTimesOf(pid);
  return t ? t.user + t.system : null;
}

/** User and system CPU time of a process so far, in seconds (system time includes loopback TCP delivery to the peer). */
export function cpuTimesOf(pid: number): { user: number; system: number } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS };
  } catch {
    return null;
  }
}

/** USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100;
