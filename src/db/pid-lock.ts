import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/*
 * A lock file that holds the pid of its owner: one process at a time per
 * embedded data directory. The file is published whole with link(2), which
 * fails when the name exists, so a reader never sees a half-written pid. A
 * lock whose pid is not a live process was left by a crash: it is removed
 * under a second lock (`<lock>.break`), after reading it again there, so two
 * processes that find the same stale lock never remove each other's fresh one.
 */

export class LockHeldError extends Error {
  constructor(
    readonly lockPath: string,
    readonly pid: number,
  ) {
    super(`${lockPath} is held by process ${pid}`);
    this.name = "LockHeldError";
  }
}

export interface HeldLock {
  readonly path: string;
  readonly pid: number;
  /** Removes the lock file if it is still this owner's; safe to call more than once. */
  release(): void;
}

export interface LockOptions {
  /** The owner written into the file; this process unless a test plays another one. */
  pid?: number;
  /** Whether a pid is a live process (tests replace it); default `processAlive`. */
  isAlive?: (pid: number) => boolean;
}

/** Lock files this process holds: a pid equal to ours in a lock we do not hold is a reused pid (a restarted container). */
const heldHere = new Set<string>();

/** Whether `pid` is a running process. EPERM means it exists under another user. */
export function processAlive(pid: number): boolean {
  // kill(0) and kill(-n) signal process groups: never ask about them.
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** The pid in a lock file; NaN when the content is not a pid; null when there is no file. */
export function readLockPid(lockPath: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(lockPath, "utf8");
  } catch (err) {
    if (errno(err) === "ENOENT") return null;
    throw err;
  }
  const m = /^\s*(\d+)\s*$/.exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/** Creates `lockPath` holding `pid`, whole, unless it exists: true when created. */
export function tryCreateLock(lockPath: string, pid: number): boolean {
  const tmp = `${lockPath}.${pid}.${crypto.randomBytes(6).toString("hex")}.tmp`;
  fs.writeFileSync(tmp, `${pid}\n`, { flag: "wx" });
  try {
    fs.linkSync(tmp, lockPath);
    return true;
  } catch (err) {
    if (errno(err) === "EEXIST") return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Removes `lockPath` if it still holds `stalePid` and that process is dead,
 * under `<lockPath>.break`. True when this call removed it; false when the
 * lock changed meanwhile or another process is removing it (look again).
 */
export function breakStaleLock(lockPath: string, stalePid: number, opts: LockOptions = {}): boolean {
  const me = opts.pid ?? process.pid;
  const alive = aliveCheck(lockPath, me, opts.isAlive);
  const breakPath = `${lockPath}.break`;
  if (!tryCreateLock(breakPath, me)) {
    // Another process is breaking it now, or died doing so (a window of a few system calls).
    const breaker = readLockPid(breakPath);
    if (breaker !== null && !alive(breaker)) fs.rmSync(breakPath, { force: true });
    return false;
  }
  try {
    // Read again under the break lock: only the same dead owner's file is removed.
    const current = readLockPid(lockPath);
    if (current === null || !sameOwner(current, stalePid) || alive(current)) return false;
    fs.rmSync(lockPath, { force: true });
    return true;
  } finally {
    fs.rmSync(breakPath, { force: true });
  }
}

function sameOwner(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

function aliveCheck(lockPath: string, me: number, isAlive: ((pid: number) => boolean) | undefined): (pid: number) => boolean {
  if (isAlive) return isAlive;
  const key = path.resolve(lockPath);
  return (pid) => (pid === me ? heldHere.has(key) : processAlive(pid));
}

/**
 * Takes the lock or throws LockHeldError naming the live owner. A stale lock
 * (dead owner, or content that is not a pid) is taken over. Released by
 * `release()`, and on process exit if nobody released it.
 */
export async function acquirePidLock(lockPath: string, opts: LockOptions = {}): Promise<HeldLock> {
  const me = opts.pid ?? process.pid;
  const key = path.resolve(lockPath);
  const alive = aliveCheck(lockPath, me, opts.isAlive);
  fs.mkdirSync(path.dirname(key), { recursive: true });
  for (let attempt = 0; attempt < 100; attempt++) {
    if (tryCreateLock(key, me)) return holdLock(key, me);
    const owner = readLockPid(key);
    if (owner === null) continue; // released meanwhile
    if (alive(owner)) throw new LockHeldError(key, owner);
    if (!breakStaleLock(key, owner, { pid: me, isAlive: alive })) await sleep(10);
  }
  throw new Error(`could not take the lock ${key}: it keeps changing hands`);
}

function holdLock(lockPath: string, pid: number): HeldLock {
  heldHere.add(lockPath);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off("exit", release);
    heldHere.delete(lockPath);
    try {
      if (readLockPid(lockPath) === pid) fs.rmSync(lockPath, { force: true });
    } catch {
      // Best effort: a lock that stays behind is stale once this process is gone.
    }
  };
  process.on("exit", release);
  return { path: lockPath, pid, release };
}
