import { ScopedAsyncLocalStorage } from "../../src/db/scoped-context";

/** Node's own flag: whether this storage (and so, for the last one, the async hook) is on. */
const enabled = (s: object): boolean => (s as { enabled?: boolean }).enabled === true;
const tick = () => new Promise((r) => setImmediate(r));

describe("ScopedAsyncLocalStorage", () => {
  it("gives the store to a run and everything it awaits, and is off once the run settled", async () => {
    const s = new ScopedAsyncLocalStorage<string>();
    expect(enabled(s)).toBe(false);
    const seen: (string | undefined)[] = [];
    const result = await s.run("a", async () => {
      seen.push(s.getStore());
      await tick();
      seen.push(s.getStore());
      await Promise.all([1, 2].map(async () => (await tick(), seen.push(s.getStore()))));
      return 42;
    });
    expect(result).toBe(42);
    expect(seen).toEqual(["a", "a", "a", "a"]);
    await tick();
    expect(s.getStore()).toBeUndefined();
    expect(enabled(s)).toBe(false);
    expect(s.runsInProgress).toBe(0);
  });

  it("keeps concurrent and nested runs apart, and stays on until the last one settles", async () => {
    const s = new ScopedAsyncLocalStorage<string>();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const long = s.run("long", async () => {
      await held;
      return s.getStore();
    });
    const short = await s.run("short", async () => {
      const inner = await s.run("inner", async () => (await tick(), s.getStore()));
      return [inner, s.getStore()];
    });
    expect(short).toEqual(["inner", "short"]);
    await tick();
    expect(enabled(s)).toBe(true); // "long" is still in progress
    release();
    expect(await long).toBe("long");
    await tick();
    expect(enabled(s)).toBe(false);
  });

  it("counts a run that throws or rejects as settled, and passes the error on", async () => {
    const s = new ScopedAsyncLocalStorage<number>();
    expect(() =>
      s.run(1, () => {
        throw new Error("sync");
      }),
    ).toThrow("sync");
    await expect(s.run(2, async () => Promise.reject(new Error("async")))).rejects.toThrow("async");
    await tick();
    expect(s.runsInProgress).toBe(0);
    expect(enabled(s)).toBe(false);
  });

  it("returns a synchronous callback's value and passes its arguments", () => {
    const s = new ScopedAsyncLocalStorage<string>();
    expect(s.run("x", (a: number, b: number) => `${s.getStore()}${a + b}`, 1, 2)).toBe("x3");
    expect(enabled(s)).toBe(false);
  });

  it("stays on for good after enterWith, which has no end", async () => {
    const s = new ScopedAsyncLocalStorage<string>();
    await s.run("a", async () => {
      await tick();
    });
    await (async () => {
      s.enterWith("entered");
      await s.run("b", async () => tick());
      await tick();
      expect(enabled(s)).toBe(true);
      expect(s.getStore()).toBe("entered");
    })();
  });
});
