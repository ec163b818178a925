import { TurnBatcher, type Pending } from "../../src/db/batch";

/** A batcher that records each batch's inputs and answers with `answer`. */
function recording(max: number, answer: (batch: Pending<number, string>[]) => Promise<void> | void) {
  const batches: number[][] = [];
  const batcher = new TurnBatcher<number, string>(max, async (batch) => {
    batches.push(batch.map((p) => p.input));
    await answer(batch);
  });
  return { batcher, batches };
}

const echo = (batch: Pending<number, string>[]) => batch.forEach((p) => p.resolve(`r${p.input}`));

describe("TurnBatcher", () => {
  it("runs the calls of one turn of the event loop together, and a later call in a batch of its own", async () => {
    const { batcher, batches } = recording(10, echo);
    const first = [batcher.push(1), batcher.push(2), batcher.push(3)];
    expect(batches).toEqual([]); // nothing runs before the turn's I/O is done
    expect(await Promise.all(first)).toEqual(["r1", "r2", "r3"]);
    expect(await batcher.push(4)).toBe("r4");
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it("splits a turn's calls into batches of at most `max`, in order", async () => {
    const { batcher, batches } = recording(2, echo);
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.push(n)));
    expect(results).toEqual(["r1", "r2", "r3", "r4", "r5"]);
    expect(batches).toEqual([[1, 2], [3, 4], [5]]);
  });

  it("rejects the calls a batch left unanswered, and only those", async () => {
    const { batcher } = recording(10, (batch) => batch.filter((p) => p.input % 2 === 0).forEach((p) => p.resolve("even")));
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.push(n)));
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "rejected"]);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/without an answer/);
  });

  it("rejects the unanswered calls with the error of a batch that throws, keeping the answers given before", async () => {
    const failure = new Error("database down");
    const { batcher } = recording(10, (batch) => {
      batch[0].resolve("early");
      throw failure;
    });
    const results = await Promise.allSettled([batcher.push(1), batcher.push(2)]);
    expect(results[0]).toEqual({ status: "fulfilled", value: "early" });
    expect(results[1]).toEqual({ status: "rejected", reason: failure });
  });

  it("with maxRunning, runs no more batches at once, and gathers the calls made meanwhile into the next batch", async () => {
    const batches: number[][] = [];
    const gates: (() => void)[] = [];
    const batcher = new TurnBatcher<number, string>(
      10,
      async (batch) => {
        batches.push(batch.map((p) => p.input));
        await new Promise<void>((release) => gates.push(release));
        echo(batch);
      },
      1,
    );
    const first = batcher.push(1);
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1]]);
    // Made while the first batch runs: they wait for it, then run as one batch.
    const later = [batcher.push(2), batcher.push(3)];
    await new Promise((r) => setImmediate(r));
    const more = batcher.push(4);
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1]]);
    gates.shift()!();
    expect(await first).toBe("r1");
    // The next batch starts once the first has ended, a pass of the loop or two later.
    for (let i = 0; i < 5 && batches.length < 2; i++) await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1], [2, 3, 4]]);
    gates.shift()!();
    expect(await Promise.all([...later, more])).toEqual(["r2", "r3", "r4"]);
  });

  it("answers a call handed over to a later call with that call's answer, not as unanswered", async () => {
    let handedOver = false;
    const batcher: TurnBatcher<number, string> = new TurnBatcher<number, string>(10, async (batch) => {
      for (const p of batch) {
        if (p.input === 1 && !handedOver) {
          handedOver = true;
          p.resolve(batcher.push(p.input));
        } else p.resolve(`r${p.input}`);
      }
    });
    expect(await batcher.push(1)).toBe("r1");
  });

  it("puts a call pushed with `first` ahead of the calls waiting", async () => {
    const batches: number[][] = [];
    const gates: (() => void)[] = [];
    const batcher = new TurnBatcher<number, string>(
      2,
      async (batch) => {
        batches.push(batch.map((p) => p.input));
        await new Promise<void>((release) => gates.push(release));
        echo(batch);
      },
      1,
    );
    const all = [batcher.push(1)];
    await new Promise((r) => setImmediate(r));
    all.push(batcher.push(2), batcher.push(3), batcher.push(4, { first: true }));
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 5 && batches.length <= i; j++) await new Promise((r) => setImmediate(r));
      gates.shift()?.();
    }
    expect(await Promise.all(all)).toEqual(["r1", "r2", "r3", "r4"]);
    expect(batches).toEqual([[1], [4, 2], [3]]);
  });
});
