import { AsyncLocalStorage } from "node:async_hooks";

/**
 * An AsyncLocalStorage that is switched on only while one of its `run()`
 * calls is in progress.
 *
 * Why: MikroORM keeps four contexts in AsyncLocalStorage (the flush guard of
 * the unit of work, the transaction and request contexts, raw query
 * fragments). On Node 20, the first `run()` of any AsyncLocalStorage installs
 * an async_hooks init hook that runs for every promise the process creates,
 * for the rest of its life: after the first `em.flush()`, the GraphQL reads
 * and the webhook renewals, which never use the ORM's contexts, paid for it on
 * every promise (a chain of awaits runs 2.5x slower; the server's CPU per
 * renewal and per read a few percent more: bench/README.md, change 22).
 * Node 24's AsyncLocalStorage has no such hook; this project runs on Node 20.
 *
 * Semantics are AsyncLocalStorage's while a run is in progress: `getStore()`
 * inside `run()` (and in everything it awaits) sees the store, nested and
 * concurrent runs keep their own. When the last run in progress has settled
 * (its callback returned, or the promise it returned settled), the storage
 * disables itself: `getStore()` is then undefined, as it is outside any run,
 * and once no storage is enabled Node removes its hook. The only difference is
 * for work a callback started and did not await, still running after the run
 * settled: it no longer sees the store. MikroORM awaits everything it runs in
 * its contexts. `enterWith()` (no end) keeps the storage enabled for good.
 */
export class ScopedAsyncLocalStorage<T> extends AsyncLocalStorage<T> {
  private inProgress = 0;
  private pinned = false;

  override run<R>(store: T, callback: () => R): R;
  override run<R, TArgs extends unknown[]>(store: T, callback: (...args: TArgs) => R, ...args: TArgs): R;
  override run<R>(store: T, callback: (...args: unknown[]) => R, ...args: unknown[]): R {
    this.inProgress++;
    let result: R;
    try {
      result = super.run(store, callback, ...args);
    } catch (err) {
      this.settled();
      throw err;
    }
    if (isThenable(result)) {
      // Observed here only to count; the caller still gets (and handles) the same promise.
      result.then(
        () => this.settled(),
        () => this.settled(),
      );
    } else {
      this.settled();
    }
    return result;
  }

  override enterWith(store: T): void {
    this.pinned = true;
    super.enterWith(store);
  }

  /** Runs in progress (for tests and diagnostics). */
  get runsInProgress(): number {
    return this.inProgress;
  }

  private settled(): void {
    this.inProgress--;
    if (this.inProgress === 0 && !this.pinned) this.disable();
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === "object" || typeof v === "function") && v !== null && typeof (v as { then?: unknown }).then === "function";
}
