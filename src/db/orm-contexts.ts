/**
 * Loads @mikro-orm/core with its AsyncLocalStorage instances created as
 * ScopedAsyncLocalStorage (scoped-context.ts: why). MikroORM creates them when
 * its modules load (module-private constants among them), so the class is
 * swapped in `node:async_hooks` for the duration of that one synchronous
 * require and restored at once: nothing else in the process gets it.
 *
 * Imported first by the entry points (main.ts, server.ts), before anything
 * loads MikroORM. If MikroORM was loaded earlier, this changes nothing:
 * its contexts stay plain AsyncLocalStorage (correct, only slower), and
 * `ormContextsScoped()` says so (logged at start).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- the module object itself (an ES import would be a copy)
import asyncHooks = require("node:async_hooks");
import { ScopedAsyncLocalStorage } from "./scoped-context";

const original = asyncHooks.AsyncLocalStorage;
(asyncHooks as { AsyncLocalStorage: unknown }).AsyncLocalStorage = ScopedAsyncLocalStorage;
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded inside the swap on purpose
  require("@mikro-orm/core");
} finally {
  (asyncHooks as { AsyncLocalStorage: unknown }).AsyncLocalStorage = original;
}

/** True when MikroORM's contexts are scoped (it was first loaded through this module). */
export function ormContextsScoped(): boolean {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the same module instance as above
  const { TransactionContext } = require("@mikro-orm/core") as typeof import("@mikro-orm/core");
  return (TransactionContext as unknown as { storage: unknown }).storage instanceof ScopedAsyncLocalStorage;
}
