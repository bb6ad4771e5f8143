import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import { createModelRegistry } from "../../src/llm/models.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { startTracing, type Tracing } from "../../src/observability/tracing.ts";
import { readTracingSettings } from "../../src/observability/tracing-config.ts";
import { Worker } from "../../src/worker/worker.ts";
import { startOtlpCollector, type OtlpCollector } from "../support/otlp-collector.ts";
import { spansOf, theSpan } from "../support/otel-env.ts";
import { simRequest, simText } from "../support/sim-answer.ts";
import { never, until } from "../support/waits.ts";

/*
 * The traceparent in a `created` entry comes from outside the worker's process: whatever stands
 * there (written by an older gateway, by another tool, or malformed on purpose), the worker runs
 * the answer, and its spans join the trace only when the value is a well-formed parent.
 */

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

describe("a worker reading the trace context from the log", () => {
  let collector: OtlpCollector;
  let tracing: Tracing;
  const engine = new MemoryEngine();
  let worker: Worker;
  beforeAll(async () => {
    collector = await startOtlpCollector();
    tracing = await startTracing(readTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url }, "worker-under-test")!);
    worker = new Worker({
      engine,
      models: createModelRegistry({ sim: { tokensPerSecond: 1000 } }),
      logger: pino({ level: "silent" }),
      metrics: new Metrics({ defaultMetrics: false }),
      name: "w",
      leaseMs: 5000,
      concurrency: 4,
      coalesceMs: 0,
    });
    worker.start();
  });
  afterAll(async () => {
    await worker.stop();
    await engine.close();
    await tracing.shutdown();
    await collector.close();
  });

  const run = async (content: string, traceparent: string): Promise<{ id: string; entries: Entry[] }> => {
    const request = simRequest(content, { max_tokens: 5 });
    const { id } = await engine.create(request, { traceparent });
    for (;;) {
      const head = await engine.head(id);
      if (head?.terminal) break;
      await engine.wait(id, head?.lastOffset ?? 0, never);
    }
    // The run's spans end as it returns, just after its last append: wait for that, then flush.
    await until(() => worker.activeRuns === 0, undefined, "the run returned");
    await tracing.flush();
    const entries = await engine.read(id, 0, 100);
    expect(entries.map((e) => (e.type === "delta" ? e.text : "")).join("")).toBe(simText(request));
    expect(entries.at(-1)?.type).toBe("completed");
    return { id, entries };
  };

  it("joins the trace a well-formed traceparent names", async () => {
    const { id } = await run("well formed", `00-${TRACE}-${SPAN}-01`);
    const claim = theSpan(spansOf(collector, id), "lifeline.claim");
    expect(claim).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, service: "worker-under-test" });
  });

  it("does not record a trace whose parent says it is not sampled", async () => {
    const { id } = await run("not sampled", `00-${TRACE}-${SPAN}-00`);
    expect(spansOf(collector, id)).toEqual([]);
    // Spans of the answers before it did arrive: the flush worked, this trace was not sampled.
    expect(collector.spans.length).toBeGreaterThan(0);
  });

  it.each([
    ["garbage", "}{not a traceparent"],
    ["an all-zero span id", `00-${TRACE}-${"0".repeat(16)}-01`],
    ["a huge value", `01-${TRACE}-${SPAN}-01-${"x".repeat(100_000)}`],
    ["a line break", `00-${TRACE}-${SPAN}-01\r\nx-evil: 1`],
  ])("runs the answer as a trace of its own when the traceparent is %s", async (_, traceparent) => {
    const { id } = await run(`bogus ${traceparent.length}`, traceparent);
    const spans = spansOf(collector, id);
    const claim = theSpan(spans, "lifeline.claim");
    expect(claim.parentSpanId).toBe("");
    expect(claim.traceId).not.toBe(TRACE);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([claim.traceId]));
    expect(theSpan(spans, "lifeline.model_call").parentSpanId).toBe(claim.spanId);
  });
});
