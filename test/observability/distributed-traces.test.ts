import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { startOtlpCollector, type OtlpCollector, type ReceivedSpan } from "../support/otlp-collector.ts";
import { otelEnv, spansOf, theSpan, tracedEnv } from "../support/otel-env.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { simText } from "../support/sim-answer.ts";
import { startSimLlmProcess, type SimLlmProcess } from "../support/sim-llm-process.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

/*
 * Traces of the distributed mode (decision 040): a real gateway process and a real worker process
 * that share nothing but a real Redis, each exporting to one collector in the test process, and a
 * model in its own process (`lifeline sim-llm`) whose first call fails with a 503. The trace context
 * crosses from gateway to worker only inside the log's `created` entry.
 */

/**
 * A span's time in whole milliseconds. OpenTelemetry's JS SDK starts a span at `Date.now()` (whole
 * ms) and ends it that plus the `performance.now()` elapsed, so of two spans within one millisecond
 * the later may start before the earlier ends by up to a millisecond; their order shows in whole ms.
 */
const msOf = (ns: bigint): bigint => ns / 1_000_000n;

const request = (content: string) => ({ model: "flaky", messages: [{ role: "user" as const, content }], max_tokens: 16 });

describe("traces across a gateway and a worker on Redis", () => {
  let redis: RedisServer | undefined;
  let model: SimLlmProcess | undefined;
  let collector: OtlpCollector;
  const dir = tempDir();
  const start = useLifelineProcesses();
  beforeEach((ctx) => requireRedis(ctx));
  beforeAll(async () => {
    collector = await startOtlpCollector();
    if (!redisAvailable()) return;
    redis = await startStandalone();
  });
  afterEach(async () => {
    await model?.stop();
    model = undefined;
    expect(collector.problems).toEqual([]);
  });
  afterAll(async () => {
    await redis?.stop();
    await collector.close();
    dir.remove();
  });

  /** A model config serving `flaky` from a sim-llm whose first call answers 503. */
  const flakyModel = async (): Promise<string> => {
    model = await startSimLlmProcess(["--fault", "error", "--fault-status", "503", "--fault-count", "1"]);
    const config = join(dir.path, `models-${Date.now()}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        providers: { "sim-remote": { type: "openai-compatible", baseUrl: `${model.url}/v1` } },
        models: { flaky: { provider: "sim-remote", model: "sim" } },
        retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 },
      }),
    );
    return config;
  };
  /** A deployment on the test's Redis under its own prefix; with the `flaky` model's config when given (else the built-in `sim`). */
  const deployment = (prefix: string, config?: string) => ({
    LIFELINE_ENGINE: "redis",
    LIFELINE_REDIS_URL: redis!.url,
    LIFELINE_REDIS_PREFIX: `${prefix}${process.pid}`,
    ...(config === undefined ? {} : { LIFELINE_CONFIG: config }),
  });
  const readAnswer = async (url: string, content: string): Promise<{ id: string; entries: Entry[] }> => {
    const id = await startGeneration(url, request(content));
    const entries = entriesOf((await readEvents(url, id)).messages);
    expect(entries.at(-1)?.type).toBe("completed");
    expect(entries.map((e) => (e.type === "delta" ? e.text : "")).join("")).toBe(simText(request(content)));
    return { id, entries };
  };

  it("a retried answer is one trace whose spans come from both processes: create and delivery on the gateway, claim, both model calls and the retry on the worker", async () => {
    const env = deployment("traced", await flakyModel());
    const gateway = await start("gateway", { ...env, ...tracedEnv(collector) });
    const worker = await start("worker", { ...env, ...tracedEnv(collector), LIFELINE_WORKER_NAME: "traced-worker" });
    const { id, entries } = await readAnswer(gateway.url, "retried once");
    expect(entries.filter((e) => e.type === "retrying")).toHaveLength(1);
    expect(await worker.terminate()).toBe(0);
    expect(await gateway.terminate()).toBe(0);

    const spans = spansOf(collector, id);
    const create = theSpan(spans, "lifeline.create");
    const deliver = theSpan(spans, "lifeline.deliver");
    const claim = theSpan(spans, "lifeline.claim");
    const failedCall = theSpan(spans, "lifeline.model_call", (s) => s.attributes["lifeline.call"] === 1);
    const retriedCall = theSpan(spans, "lifeline.model_call", (s) => s.attributes["lifeline.call"] === 2);
    const retry = theSpan(spans, "lifeline.append", (s) => s.attributes["lifeline.entry_type"] === "retrying");

    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([create.traceId]));
    expect(create.parentSpanId).toBe("");
    for (const span of [create, deliver]) expect(span.service).toBe("lifeline-gateway");
    for (const span of [claim, failedCall, retriedCall, retry]) expect(span.service).toBe("lifeline-worker");
    // The worker's span is the child of the gateway's: the parent came through the log.
    expect(claim.parentSpanId).toBe(create.spanId);
    expect(claim.attributes).toMatchObject({
      "lifeline.worker": "traced-worker",
      "lifeline.outcome": "completed",
      "lifeline.model_calls": 2,
    });
    expect(deliver.parentSpanId).toBe(create.spanId);
    expect(failedCall.parentSpanId).toBe(claim.spanId);
    expect(failedCall.statusCode).toBe(2);
    expect(failedCall.attributes).toMatchObject({
      "lifeline.model": "flaky",
      "lifeline.provider": "sim-remote",
      "lifeline.outcome": "failed",
      "lifeline.error_code": "model_unavailable",
      "lifeline.tokens": 0,
    });
    expect(retry.parentSpanId).toBe(claim.spanId);
    expect(retry.attributes["lifeline.error_code"]).toBe("model_unavailable");
    expect(msOf(retry.startNs)).toBeGreaterThanOrEqual(msOf(failedCall.endNs));
    expect(retriedCall.parentSpanId).toBe(claim.spanId);
    expect(msOf(retriedCall.startNs)).toBeGreaterThanOrEqual(msOf(retry.endNs));
    expect(retriedCall.attributes).toMatchObject({ "lifeline.model": "flaky", "lifeline.outcome": "completed", "lifeline.tokens": 16 });
    expect(retriedCall.statusCode).not.toBe(2);
  });

  it("an answer taken over after its worker was SIGKILLed stays one trace: the second worker's claim, with a higher attempt and marked a takeover, is the create span's child too", async () => {
    const env = { ...deployment("takeover"), LIFELINE_LEASE_MS: "1000", LIFELINE_SIM_TOKENS_PER_SECOND: "20" };
    const gateway = await start("gateway", { ...env, ...tracedEnv(collector) });
    const first = await start("worker", { ...env, ...tracedEnv(collector), LIFELINE_WORKER_NAME: "first" });
    const ask = { model: "sim", messages: [{ role: "user" as const, content: "taken over" }], max_tokens: 60 };
    const id = await startGeneration(gateway.url, ask);
    // Killed once it has written text: its run never ends, so its claim span is never sent.
    await readEvents(gateway.url, id, { cutWhen: (m) => m.event === "delta" });
    const startedByFirst = (span: ReceivedSpan) =>
      span.attributes["lifeline.entry_type"] === "started" && span.attributes["lifeline.attempt"] === 1;
    await until(() => spansOf(collector, id).some(startedByFirst), undefined, "the first worker's started append exported");
    await first.kill();
    const second = await start("worker", { ...env, ...tracedEnv(collector), LIFELINE_WORKER_NAME: "second" });
    const entries = entriesOf((await readEvents(gateway.url, id)).messages);
    expect(entries.map((e) => (e.type === "delta" ? e.text : "")).join("")).toBe(simText(ask));
    expect(await second.terminate()).toBe(0);
    expect(await gateway.terminate()).toBe(0);

    const spans = spansOf(collector, id);
    const create = theSpan(spans, "lifeline.create");
    const claim = theSpan(spans, "lifeline.claim");
    expect(claim).toMatchObject({ traceId: create.traceId, parentSpanId: create.spanId });
    expect(claim.attributes).toMatchObject({
      "lifeline.worker": "second",
      "lifeline.takeover": true,
      "lifeline.attempt": 2,
      "lifeline.outcome": "completed",
    });
    // What the first worker ended (and exported) before it died, its started append, is in the same trace.
    expect(theSpan(spans, "lifeline.append", startedByFirst).traceId).toBe(create.traceId);
  });

  it("a log created by an untraced gateway (no traceparent in it) is run by a traced worker: its spans start a trace of their own, with the generation id", async () => {
    const env = deployment("mixed", await flakyModel());
    const gateway = await start("gateway", { ...env, ...otelEnv() });
    const worker = await start("worker", { ...env, ...tracedEnv(collector) });
    const { id, entries } = await readAnswer(gateway.url, "untraced gateway");
    expect(entries[0]).not.toHaveProperty("traceparent");
    expect(await worker.terminate()).toBe(0);
    expect(await gateway.terminate()).toBe(0);

    const spans = spansOf(collector, id);
    const claim = theSpan(spans, "lifeline.claim");
    expect(claim.parentSpanId).toBe("");
    expect(spans.filter((s) => s.name === "lifeline.create" || s.name === "lifeline.deliver")).toEqual([]);
    expect(spans.filter((s) => s.name === "lifeline.model_call")).toHaveLength(2);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([claim.traceId]));
  });
});
