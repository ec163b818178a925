/*
 * Jest's Node environment, plus a prompt exit for the worker process it runs in.
 *
 * When the run is over, jest-worker tells each worker to end and only stops
 * listening: the worker then exits when its event loop is empty, and Node's
 * natural exit frees the whole V8 heap page by page. For a worker that ran
 * server test files, on a loaded machine, that outlasts the fixed 500 ms after
 * which jest kills any worker still there, printing "A worker process has
 * failed to exit gracefully". Nothing is left open (the
 * harness closes every server, pool and socket): the worker is only slow to
 * die. process.exit() ends it without tearing the heap down.
 *
 * The environment class is loaded in the worker itself (outside the test's
 * sandbox, whose `process` is a copy), so the listener is on the real process.
 */
const { setImmediate } = require("node:timers");
const { TestEnvironment } = require("jest-environment-node");

/** jest-worker's message to a child that has no more work (CHILD_MESSAGE_END in jest-worker's types). */
const CHILD_MESSAGE_END = 2;

let installed = false;
function exitWhenTheWorkerEnds() {
  // Only in a jest-worker child process (with --runInBand the tests run in jest's own process).
  const child = typeof process.send === "function" && /jest-worker[\\/].*processChild\.js$/.test(process.argv[1] ?? "");
  if (installed || !child) return;
  installed = true;
  process.on("message", (message) => {
    if (Array.isArray(message) && message[0] === CHILD_MESSAGE_END) setImmediate(() => process.exit(0));
  });
}

class BillingTestEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    exitWhenTheWorkerEnds();
  }

  async handleTestEvent(event) {
    // After the file's own afterAll hooks: the harnesses none of them could close (test/support/harness.ts).
    if (event.name === "run_finish") await this.global.closeLeftHarnesses?.();
  }
}

module.exports = BillingTestEnvironment;
