import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { acquirePidLock, breakStaleLock, LockHeldError, readLockPid } from "../../src/db/pid-lock";

const ROOT = path.resolve(__dirname, "../..");

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

async function heldError(p: Promise<unknown>): Promise<LockHeldError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof LockHeldError) return err;
    throw err;
  }
  throw new Error("the lock was taken");
}

describe("pid lock file", () => {
  let dir: string;
  let lockPath: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pid-lock-"));
    lockPath = path.join(dir, "x.lock");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("holds this process's pid until released, and leaves nothing else behind", async () => {
    const lock = await acquirePidLock(lockPath);
    expect(fs.readFileSync(lockPath, "utf8")).toBe(`${process.pid}\n`);
    expect(fs.readdirSync(dir)).toEqual(["x.lock"]);
    lock.release();
    lock.release();
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  it("refuses while a live process holds it, and leaves its file alone", async () => {
    const live = process.ppid;
    fs.writeFileSync(lockPath, `${live}\n`);
    const err = await heldError(acquirePidLock(lockPath));
    expect(err.pid).toBe(live);
    expect(fs.readFileSync(lockPath, "utf8")).toBe(`${live}\n`);
  });

  it("refuses a second lock in the same process", async () => {
    const lock = await acquirePidLock(lockPath);
    expect((await heldError(acquirePidLock(lockPath))).pid).toBe(process.pid);
    lock.release();
    (await acquirePidLock(lockPath)).release();
  });

  it.each([
    ["a dead process", () => `${deadPid()}\n`],
    ["no pid at all", () => ""],
    ["garbage", () => "not a pid"],
    // A restarted container gets the same pid as the process that left the lock.
    ["this process's own pid, from a previous life", () => `${process.pid}\n`],
  ])("takes over a lock left by %s", async (_name, content) => {
    fs.writeFileSync(lockPath, content());
    const lock = await acquirePidLock(lockPath);
    expect(readLockPid(lockPath)).toBe(process.pid);
    lock.release();
  });

  it("two takers of one stale lock: the second never removes the first one's fresh lock", async () => {
    const stale = 7001;
    const live = new Set<number>();
    const isAlive = (pid: number) => live.has(pid);
    fs.writeFileSync(lockPath, `${stale}\n`);
    // Both read the same dead owner before either acts.
    const seenByA = readLockPid(lockPath)!;
    const seenByB = readLockPid(lockPath)!;
    expect([seenByA, seenByB]).toEqual([stale, stale]);

    // A breaks it and takes the lock.
    expect(breakStaleLock(lockPath, seenByA, { pid: 7002, isAlive })).toBe(true);
    live.add(7002);
    const a = await acquirePidLock(lockPath, { pid: 7002, isAlive });
    expect(readLockPid(lockPath)).toBe(7002);

    // B acts on what it saw: the lock is no longer that dead owner's, so it stays.
    expect(breakStaleLock(lockPath, seenByB, { pid: 7003, isAlive })).toBe(false);
    expect(readLockPid(lockPath)).toBe(7002);
    expect((await heldError(acquirePidLock(lockPath, { pid: 7003, isAlive }))).pid).toBe(7002);
    a.release();
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  it("does not break a stale lock while another live process is breaking it", () => {
    fs.writeFileSync(lockPath, "7001\n");
    fs.writeFileSync(`${lockPath}.break`, "7002\n");
    const isAlive = (pid: number) => pid === 7002;
    expect(breakStaleLock(lockPath, 7001, { pid: 7003, isAlive })).toBe(false);
    expect(readLockPid(lockPath)).toBe(7001);
    expect(readLockPid(`${lockPath}.break`)).toBe(7002);
  });

  it("clears a break lock left by a process that died while breaking", async () => {
    fs.writeFileSync(lockPath, `${deadPid()}\n`);
    fs.writeFileSync(`${lockPath}.break`, `${deadPid()}\n`);
    const lock = await acquirePidLock(lockPath);
    expect(readLockPid(lockPath)).toBe(process.pid);
    expect(fs.existsSync(`${lockPath}.break`)).toBe(false);
    lock.release();
  });

  it("release leaves a lock that another process owns now", async () => {
    const lock = await acquirePidLock(lockPath);
    fs.rmSync(lockPath);
    fs.writeFileSync(lockPath, "7004\n");
    lock.release();
    expect(readLockPid(lockPath)).toBe(7004);
  });

  it("is released when the process exits without releasing it", () => {
    const script = `require(${JSON.stringify(path.join(ROOT, "dist/db/pid-lock.js"))}).acquirePidLock(${JSON.stringify(lockPath)}).then(() => process.exit(3))`;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
    expect(r.status).toBe(3);
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  it("eight processes racing for one stale lock: exactly one takes it", async () => {
    fs.writeFileSync(lockPath, `${deadPid()}\n`);
    // Each child reports "held" or "busy <owner>" and, when it holds the lock, keeps it until its stdin closes.
    const script = `
      require(${JSON.stringify(path.join(ROOT, "dist/db/pid-lock.js"))}).acquirePidLock(${JSON.stringify(lockPath)}).then(
        (lock) => { console.log("held"); process.stdin.on("end", () => { lock.release(); process.exit(0); }); process.stdin.resume(); },
        (err) => { console.log(err.pid ? "busy " + err.pid : "error " + err.message); process.exit(0); },
      );`;
    const children = Array.from({ length: 8 }, () => {
      const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "inherit"] });
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      const line = new Promise<string>((resolve) => {
        let out = "";
        child.stdout!.on("data", (d) => {
          out += String(d);
          if (out.includes("\n")) resolve(out.trim());
        });
        // Not on "exit": a child's exit can be seen before the last of its output is read.
        child.stdout!.on("end", () => resolve(out.trim()));
      });
      return { child, exited, line };
    });
    try {
      const lines = await Promise.all(children.map((c) => c.line));
      const holders = children.filter((_c, i) => lines[i] === "held");
      expect(holders).toHaveLength(1);
      const holder = holders[0].child.pid;
      expect(lines.filter((l) => l !== "held")).toEqual(Array(7).fill(`busy ${holder}`));
      expect(readLockPid(lockPath)).toBe(holder);
    } finally {
      for (const c of children) c.child.stdin!.end();
      await Promise.all(children.map((c) => c.exited));
    }
    expect(fs.existsSync(lockPath)).toBe(false);
  });
});
