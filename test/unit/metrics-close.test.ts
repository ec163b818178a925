import { PerformanceObserver } from "node:perf_hooks";
import v8 from "node:v8";
import vm from "node:vm";
import { createMetrics } from "../../src/metrics";

/** A full garbage collection (the flag only applies to contexts made after it, hence the fresh context). */
function collectGarbage(): void {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}

/**
 * Collects garbage once and resolves when Node has dispatched that collection's entry to every GC observer: a
 * control observer's callback runs in the same dispatch as all others (one setImmediate for every pending observer),
 * so one more turn after it has them all done.
 */
async function gcObservedByAll(): Promise<void> {
  await new Promise<void>((resolve) => {
    const control = new PerformanceObserver(() => {
      control.disconnect();
      setImmediate(resolve);
    });
    control.observe({ entryTypes: ["gc"] });
    collectGarbage();
  });
}

async function gcCount(registry: ReturnType<typeof createMetrics>["registry"]): Promise<number> {
  const metric = await registry.getSingleMetric("billing_nodejs_gc_duration_seconds")!.get();
  // A histogram's values carry the name of the series each belongs to (_bucket, _sum, _count).
  const values = metric.values as { metricName?: string; value: number }[];
  return values.filter((v) => v.metricName === "billing_nodejs_gc_duration_seconds_count").reduce((n, v) => n + v.value, 0);
}

describe("metrics close", () => {
  it("counts collections while open and none once closed: the GC observer is disconnected", async () => {
    const metrics = createMetrics();
    await gcObservedByAll();
    const open = await gcCount(metrics.registry);
    expect(open).toBeGreaterThanOrEqual(1);

    metrics.close();
    await gcObservedByAll();
    await gcObservedByAll();
    expect(await gcCount(metrics.registry)).toBe(open);
  });

  it("leaves perf_hooks as it found it, so only the default metrics' own observer and histogram are stopped", async () => {
    const perfHooks = await import("node:perf_hooks");
    const { PerformanceObserver: before, monitorEventLoopDelay } = perfHooks;
    createMetrics().close();
    expect(perfHooks.PerformanceObserver).toBe(before);
    expect(perfHooks.monitorEventLoopDelay).toBe(monitorEventLoopDelay);

    // An observer made after a close is still served.
    const other = createMetrics();
    createMetrics().close();
    await gcObservedByAll();
    expect(await gcCount(other.registry)).toBeGreaterThanOrEqual(1);
    other.close();
  });
});
