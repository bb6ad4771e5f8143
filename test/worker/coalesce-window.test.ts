import { describe, expect, it } from "vitest";
import { Metrics } from "../../src/observability/metrics.ts";
import { CoalesceWindow } from "../../src/worker/coalesce-window.ts";

describe("a worker's coalescing window", () => {
  it("widens to 100 ms while the event loop is saturated and narrows back once it has eased", () => {
    const window = new CoalesceWindow(20);
    expect(window.ms).toBe(20);
    window.sample(0.5);
    expect(window.ms).toBe(20);
    window.sample(0.95); // one busy sample is a burst, not saturation
    expect(window.ms).toBe(20);
    window.sample(0.5);
    window.sample(0.95);
    expect(window.ms).toBe(20);
    window.sample(0.97);
    expect(window.ms).toBe(100);
    window.sample(0.75); // between the two marks: as it was
    expect(window.ms).toBe(100);
    window.sample(0.75); // and it never steps below 100 ms that way
    window.sample(0.75);
    expect(window.ms).toBe(100);
    window.sample(0.4);
    expect(window.ms).toBe(20);
    window.sample(0.75); // nor does a window that has not grown widen between the marks
    window.sample(0.75);
    expect(window.ms).toBe(20);
  });

  it("a grown window steps down while the loop is busy but no longer saturated, and settles where it keeps up", () => {
    const window = new CoalesceWindow(20);
    for (let i = 0; i < 6; i += 1) window.sample(0.99);
    expect(window.ms).toBe(400);
    const seen: number[] = [];
    for (const busy of [0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.95, 0.95, 0.95, 0.95, 0.8, 0.8, 0.5]) {
      window.sample(busy);
      seen.push(window.ms);
    }
    // Two calm samples: 200; two more: 100, and no lower; saturated again: 100, then 200; calm: 100; eased: 20.
    expect(seen).toEqual([400, 200, 200, 100, 100, 100, 100, 100, 100, 200, 200, 100, 20]);
  });

  it("while the saturation lasts it doubles every two more busy samples, up to 400 ms; an answer holding 32 tokens keeps 100 ms", () => {
    const window = new CoalesceWindow(20);
    const seen: number[] = [];
    for (let i = 0; i < 10; i += 1) {
      window.sample(0.99);
      seen.push(window.ms);
    }
    expect(seen).toEqual([20, 100, 100, 200, 200, 400, 400, 400, 400, 400]);
    expect(window.windowFor(31)).toBe(400);
    expect(window.windowFor(32)).toBe(100);
    window.sample(0.75);
    expect(window.ms).toBe(400);
    window.sample(0.3);
    expect(window.ms).toBe(20);
    expect(window.windowFor(100)).toBe(20); // not saturated: the configured window for everyone
  });

  it("a configured window wider than that stays as configured, and no window (one entry per token) stays none", () => {
    const wide = new CoalesceWindow(250);
    wide.sample(0.99);
    wide.sample(0.99);
    expect(wide.ms).toBe(250);
    for (let i = 0; i < 4; i += 1) wide.sample(0.99);
    expect(wide.ms).toBe(400);
    for (let i = 0; i < 6; i += 1) wide.sample(0.8);
    expect(wide.ms).toBe(250); // steps down no lower than configured
    const none = new CoalesceWindow(0);
    none.sample(0.99);
    none.sample(0.99);
    expect(none.ms).toBe(0);
  });

  it("measures the event loop itself: held busy for two samples, it widens", async () => {
    const window = new CoalesceWindow(20);
    window.start();
    try {
      for (let i = 0; i < 2; i += 1) {
        const until = performance.now() + 300; // longer than a sample: the loop does not turn meanwhile
        while (performance.now() < until) {
          // busy
        }
        await new Promise((resolve) => setTimeout(resolve, 1)); // the sample due during the spin runs now
      }
      expect(window.ms).toBe(100);
    } finally {
      window.stop();
    }
    expect(window.ms).toBe(20);
  });

  it("is exported as lifeline_coalesce_window_ms, read at each scrape, only where a worker watches it", async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const scrape = async (): Promise<string[]> =>
      (await metrics.registry.metrics()).split("\n").filter((l) => l.startsWith("lifeline_coalesce"));
    expect(await scrape()).toEqual([]); // a gateway alone has no window
    const window = new CoalesceWindow(20);
    metrics.watchCoalesceWindow(() => -1);
    metrics.watchCoalesceWindow(() => window.ms); // the last watch is read, through the one gauge
    expect(await scrape()).toEqual(["lifeline_coalesce_window_ms 20"]);
    window.sample(0.95);
    window.sample(0.95);
    expect(await scrape()).toEqual(["lifeline_coalesce_window_ms 100"]);
  });
});
