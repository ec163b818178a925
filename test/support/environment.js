/*
 * Jest's Node environment, plus a prompt exit for the worker process it runs in, and a worker that keeps nothing of
 * a test file once the file is done.
 *
 * When the run is over, jest-worker sends each worker an end message and gives it a fixed 500 ms to be gone before
 * it kills it, printing "A worker process has failed to exit gracefully". Nothing is left open (the harness closes
 * every server, pool and socket), so what takes the time is the exit itself: the kernel frees the process's memory
 * page by page before jest sees the exit, and a worker that kept each file's module graph ends at gigabytes. Two
 * things keep that short: the worker ends itself as soon as the end message arrives, and each file's memory is
 * released when the file ends, so the exit has only a small process to free.
 *
 * What kept each file's memory, found by measuring a worker's heap between files:
 * - V8's compilation cache. V8 keeps every distinct script it compiles, with its compiled code, and evicts it
 *   only when the heap nears V8's own limit. Jest compiles every module of a file again for that file, so a
 *   worker's heap grew with each file it ran. Writing a heap snapshot clears the cache, which is why snapshots did
 *   not show it; the bytecode statistics (v8.getHeapCodeStatistics) did. The cache is off in the workers (below),
 *   which also runs the files faster here.
 * - Anything registered in Node itself with a closure of the file: prom-client's GC observer was one (a closed
 *   server now disconnects it, src/metrics.ts). The teardown empties the sandbox's global and collects garbage, so
 *   such a closure keeps only the realm's builtins.
 *
 * The worker ends by SIGKILL to itself, not process.exit(): every result has already gone to jest over IPC when the
 * end message comes, and process.exit() still runs Node's own shutdown (exit handlers, then the V8 platform's,
 * which waits for its background threads, e.g. a concurrent GC of a large heap), which a trace put near a second on
 * a loaded machine between the worker's exit event and jest seeing the exit. jest-worker treats a child that died by
 * a signal with no request pending as a normal end.
 *
 * The environment class is loaded in the worker itself (outside the test's sandbox, whose `process` is a copy),
 * so the listener is on the real process.
 */
const { setImmediate } = require("node:timers");
const v8 = require("node:v8");
const vm = require("node:vm");
const { TestEnvironment } = require("jest-environment-node");

/** jest-worker's message to a child that has no more work (CHILD_MESSAGE_END in jest-worker's types). */
const CHILD_MESSAGE_END = 2;

// Before any test file's module is compiled (see above). A V8 flag read at each compilation, so setting it here holds.
v8.setFlagsFromString("--no-compilation-cache");

let installed = false;
function exitWhenTheWorkerEnds() {
  // Only in a jest-worker child process (with --runInBand the tests run in jest's own process).
  const child = typeof process.send === "function" && /jest-worker[\\/].*processChild\.js$/.test(process.argv[1] ?? "");
  if (installed || !child) return;
  installed = true;
  process.on("message", (message) => {
    if (Array.isArray(message) && message[0] === CHILD_MESSAGE_END) setImmediate(() => process.kill(process.pid, "SIGKILL"));
  });
}

/**
 * A full garbage collection, for a worker between test files: `global.gc` when node runs with --expose-gc, else
 * the same function taken from a fresh context once the flag is set (the flag only applies to contexts made after it).
 */
let collectGarbage;
function fullGc() {
  if (!collectGarbage) {
    if (typeof globalThis.gc !== "function") v8.setFlagsFromString("--expose-gc");
    collectGarbage = typeof globalThis.gc === "function" ? globalThis.gc : vm.runInNewContext("gc");
  }
  collectGarbage();
}

class BillingTestEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    exitWhenTheWorkerEnds();
    // The sandbox's globals before the file ran: node's and jest's. Whatever the run adds is released at teardown.
    this.ownGlobals = new Set(Reflect.ownKeys(this.global));
  }

  /**
   * Releases what the file kept, before the worker reports the file done. A closure of the sandbox that stays
   * registered in node's own state keeps the sandbox's global alive, and with it everything the file's tests reach
   * through it: jest-circus's state, the harnesses, their servers and embedded databases. Emptying the global leaves
   * such a closure only the realm's builtins; the full collection then frees the file's memory (PGlite's among it)
   * here, rather than leaving it to the worker's exit.
   */
  async teardown() {
    const sandbox = this.global;
    await super.teardown();
    for (const key of Reflect.ownKeys(sandbox)) {
      if (this.ownGlobals.has(key)) continue;
      const d = Object.getOwnPropertyDescriptor(sandbox, key);
      if (d?.configurable) delete sandbox[key];
    }
    // The file's listeners on its copy of `process` (the real process has its own).
    sandbox.process?.removeAllListeners?.();
    this.global = null;
    fullGc();
  }

  async handleTestEvent(event) {
    // After the file's own afterAll hooks: the harnesses none of them could close (test/support/harness.ts).
    if (event.name === "run_finish") await this.global.closeLeftHarnesses?.();
  }
}

module.exports = BillingTestEnvironment;
