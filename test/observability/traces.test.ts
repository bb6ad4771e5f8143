import { readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { checkFollow } from "../../src/chaos/follow-check.ts";
import type { WebSocketConstructor } from "../../src/client/ws-transport.ts";
import { createClient } from "../../src/client/index.ts";
import type { Entry } from "../../src/core/entries.ts";
import { parseTraceparent } from "../../src/observability/trace-context.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { startOtlpCollector, type OtlpCollector } from "../support/otlp-collector.ts";
import { otelEnv, spansOf, theSpan, tracedEnv } from "../support/otel-env.ts";
import { refusedPort } from "../support/refused-port.ts";
import { runLifeline } from "../support/run-cli.ts";
import { simRequest, simText } from "../support/sim-answer.ts";
import { entriesOf, postJson, readEvents, startGeneration } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

/*
 * Traces of the embedded mode (decision 040): a real `lifeline start` process on sqlite exporting
 * OTLP/HTTP protobuf to a real collector in the test process. Every process is stopped with
 * SIGTERM and its exit awaited before spans are looked at: a stop flushes them, so nothing is
 * waited for by time.
 */

const CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN = "00f067aa0ba902b7";

describe("traces of an embedded node", () => {
  let collector: OtlpCollector;
  const start = useLifelineProcesses();
  const dirs: { remove(): void }[] = [];
  beforeAll(async () => {
    collector = await startOtlpCollector();
  });
  afterEach(() => {
    for (const dir of dirs.splice(0)) dir.remove();
    expect(collector.problems).toEqual([]);
  });
  afterAll(async () => {
    await collector.close();
  });
  const tempDirFor = (): string => {
    const dir = tempDir();
    dirs.push(dir);
    return dir.path;
  };
  const embedded = (env: Record<string, string>) => {
    const dir = tempDir();
    dirs.push(dir);
    return start("start", { LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: dir.path, LIFELINE_SIM_TOKENS_PER_SECOND: "200", ...env });
  };
  /** Starts an answer, reads it to its end over SSE and returns its id and log. */
  const answer = async (url: string, content: string, headers: Record<string, string> = {}) => {
    const request = simRequest(content, { max_tokens: 12 });
    const id = await startGeneration(url, request, headers);
    const read = await readEvents(url, id);
    const entries: Entry[] = entriesOf(read.messages);
    expect(entries.map((e) => (e.type === "delta" ? e.text : "")).join("")).toBe(simText(request));
    return { id, entries };
  };

  it("one answer gives one trace: create (under the client's span) -> claim -> model call -> appends, and the delivery under create, each span with the generation id", async () => {
    const node = await embedded(tracedEnv(collector));
    const { id, entries } = await answer(node.url, "one trace", { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` });
    expect(await node.terminate()).toBe(0);

    const spans = spansOf(collector, id);
    const create = theSpan(spans, "lifeline.create");
    const claim = theSpan(spans, "lifeline.claim");
    const call = theSpan(spans, "lifeline.model_call");
    const deliver = theSpan(spans, "lifeline.deliver");
    const appends = spans.filter((s) => s.name === "lifeline.append");

    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([CLIENT_TRACE]));
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(["lifeline"]));
    expect(create.parentSpanId).toBe(CLIENT_SPAN);
    expect(create.attributes).toMatchObject({ "lifeline.model": "sim", "lifeline.replayed": false });
    // The created entry carries the create span's context: that is how the worker joins the trace.
    const created = entries[0]!;
    expect(created.type === "created" && parseTraceparent(created.traceparent)).toEqual({
      traceId: CLIENT_TRACE,
      spanId: create.spanId,
      flags: 1,
    });
    expect(claim.parentSpanId).toBe(create.spanId);
    expect(claim.attributes).toMatchObject({ "lifeline.attempt": 1, "lifeline.takeover": false, "lifeline.outcome": "completed" });
    expect(call.parentSpanId).toBe(claim.spanId);
    expect(call.attributes).toMatchObject({
      "lifeline.model": "sim",
      "lifeline.provider": "sim",
      "lifeline.call": 1,
      "lifeline.fallback": false,
      "lifeline.outcome": "completed",
      "lifeline.tokens": 12,
    });
    // started, the first delta and completed have spans, all under the call; the other deltas are counted on it.
    expect(appends.map((s) => s.attributes["lifeline.entry_type"]).sort()).toEqual(["completed", "delta", "started"]);
    for (const append of appends) expect(append.parentSpanId).toBe(call.spanId);
    const deltaEntries = entries.filter((e) => e.type === "delta").length;
    expect(call.attributes["lifeline.delta_appends"]).toBeLessThanOrEqual(deltaEntries);
    expect(call.attributes["lifeline.delta_appends"]).toBeGreaterThanOrEqual(1);
    expect(deliver.parentSpanId).toBe(create.spanId);
    expect(deliver.attributes).toMatchObject({
      "lifeline.transport": "sse",
      "lifeline.from_offset": 0,
      "lifeline.entries": entries.length,
      "lifeline.outcome": "ended",
    });
    for (const span of [claim, call, deliver]) expect(span.endNs).toBeGreaterThanOrEqual(span.startNs);
  });

  it("a fallback is a second model call on the next route; a long-poll resumed from a cursor, a WebSocket and the OpenAI door each deliver under the create span", async () => {
    const config = join(tempDirFor(), "models.json");
    writeFileSync(
      config,
      JSON.stringify({
        providers: {
          down: { type: "openai-compatible", baseUrl: `http://127.0.0.1:${await refusedPort()}/v1` },
          "stand-in": { type: "sim" },
        },
        models: { primary: { provider: "down", model: "x", fallbacks: ["backup"] }, backup: { provider: "stand-in" } },
        retry: { maxAttempts: 1 },
      }),
    );
    const node = await embedded(tracedEnv(collector, { LIFELINE_CONFIG: config }));
    const ask = { model: "primary", messages: [{ role: "user" as const, content: "fall back" }], max_tokens: 8 };
    const id = await startGeneration(node.url, ask);
    const read = entriesOf((await readEvents(node.url, id)).messages);
    expect(read.map((e) => (e.type === "delta" ? e.text : "")).join("")).toBe(simText(ask));
    const poll = await fetch(new URL(`/v1/generations/${id}/poll?from=2&wait_ms=0`, node.url));
    expect(poll.status).toBe(200);
    await poll.arrayBuffer();
    const client = createClient({ baseUrl: node.url, transports: ["websocket"], WebSocket: WebSocket as unknown as WebSocketConstructor });
    const overWebSocket = await checkFollow(client.follow(id));
    client.close();
    expect(overWebSocket.text).toBe(simText(ask));
    const door = await postJson(node.url, "/v1/chat/completions", { model: "backup", messages: [{ role: "user", content: "door" }] });
    expect(door.status).toBe(200);
    expect(await node.terminate()).toBe(0);

    const spans = spansOf(collector, id);
    const create = theSpan(spans, "lifeline.create");
    const claim = theSpan(spans, "lifeline.claim");
    const down = theSpan(spans, "lifeline.model_call", (s) => s.attributes["lifeline.call"] === 1);
    const backup = theSpan(spans, "lifeline.model_call", (s) => s.attributes["lifeline.call"] === 2);
    expect(down.attributes).toMatchObject({
      "lifeline.model": "primary",
      "lifeline.provider": "down",
      "lifeline.route_index": 0,
      "lifeline.fallback": false,
      "lifeline.outcome": "failed",
      "lifeline.error_code": "model_unavailable",
    });
    expect(backup.attributes).toMatchObject({
      "lifeline.model": "backup",
      "lifeline.provider": "sim", // a sim provider's name is its type
      "lifeline.route_index": 1,
      "lifeline.fallback": true,
      "lifeline.outcome": "completed",
    });
    for (const call of [down, backup]) expect(call.parentSpanId).toBe(claim.spanId);
    const polled = theSpan(spans, "lifeline.deliver", (s) => s.attributes["lifeline.transport"] === "long-poll");
    expect(polled).toMatchObject({ parentSpanId: create.spanId, traceId: create.traceId });
    expect(polled.attributes).toMatchObject({
      "lifeline.from_offset": 2,
      "lifeline.entries": read.length - 2,
      "lifeline.outcome": "ended",
    });
    const socket = theSpan(spans, "lifeline.deliver", (s) => s.attributes["lifeline.transport"] === "websocket");
    expect(socket).toMatchObject({ parentSpanId: create.spanId, traceId: create.traceId });
    expect(socket.attributes).toMatchObject({ "lifeline.from_offset": 0, "lifeline.entries": read.length, "lifeline.outcome": "ended" });
    // The OpenAI door's answer: its delivery is under its generation's create span.
    const doorDelivery = theSpan(collector.spans, "lifeline.deliver", (s) => s.attributes["lifeline.transport"] === "door");
    const doorSpans = spansOf(collector, String(doorDelivery.attributes["lifeline.generation_id"]));
    expect(doorDelivery.parentSpanId).toBe(theSpan(doorSpans, "lifeline.create").spanId);
    expect(theSpan(doorSpans, "lifeline.model_call").attributes["lifeline.model"]).toBe("backup");
  });

  it("a malformed or all-zero traceparent from a client is no parent: the answer runs and its trace starts at the create span", async () => {
    const node = await embedded(tracedEnv(collector));
    const bogus = [
      "00-not-a-trace-01",
      `00-${"0".repeat(32)}-${CLIENT_SPAN}-01`,
      `ff-${CLIENT_TRACE}-${CLIENT_SPAN}-01`,
      `00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_SPAN}-01`,
      `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01-extra`,
    ];
    const ids: string[] = [];
    for (const [i, traceparent] of bogus.entries()) ids.push((await answer(node.url, `bogus ${i}`, { traceparent })).id);
    expect(await node.terminate()).toBe(0);
    for (const id of ids) {
      const spans = spansOf(collector, id);
      const create = theSpan(spans, "lifeline.create");
      expect(create.parentSpanId).toBe("");
      expect(create.traceId).not.toBe(CLIENT_TRACE);
      expect(theSpan(spans, "lifeline.claim").parentSpanId).toBe(create.spanId);
      expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([create.traceId]));
    }
  });

  it("with no OTEL_* set nothing is traced: no traceparent in the log, no span sent, no port opened but the gateway's", async () => {
    const before = collector.requests.length;
    const node = await embedded(otelEnv());
    const { entries } = await answer(node.url, "untraced");
    expect(entries[0]).not.toHaveProperty("traceparent");
    expect(listeningPorts(node.child.pid!)).toEqual([Number(new URL(node.url).port)]);
    expect(await node.terminate()).toBe(0);
    expect(collector.requests.length).toBe(before);
  });

  it.each([
    ["OTEL_SDK_DISABLED=true", { OTEL_SDK_DISABLED: "true" }],
    ["OTEL_TRACES_EXPORTER=none", { OTEL_TRACES_EXPORTER: "none" }],
  ])("with an endpoint set but %s, nothing reaches the collector", async (_, set) => {
    const before = collector.requests.length;
    const node = await embedded(otelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, ...set }));
    const { entries } = await answer(node.url, "disabled");
    expect(entries[0]).not.toHaveProperty("traceparent");
    expect(await node.terminate()).toBe(0);
    expect(collector.requests.length).toBe(before);
  });

  it("a collector that does not answer costs no answer: it runs exactly, the process says once that traces are not sent, and stops", async () => {
    const closed = await refusedPort();
    const node = await embedded(
      otelEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}`,
        OTEL_BSP_SCHEDULE_DELAY: "10",
        OTEL_EXPORTER_OTLP_TIMEOUT: "500",
      }),
    );
    await answer(node.url, "nobody listens");
    await until(() => /lifeline: traces: /.test(node.output()), undefined, "the export failure said");
    await answer(node.url, "still nobody");
    expect(await node.terminate()).toBe(0);
    expect(node.output().match(/lifeline: traces: /g)).toHaveLength(1);
    expect(node.output()).toMatch(/lifeline: traces: connect ECONNREFUSED 127\.0\.0\.1:\d+\n/);
  });

  it.each([
    [{ OTEL_TRACES_EXPORTER: "zipkin" }, /OTEL_TRACES_EXPORTER must be otlp or none.*"zipkin"/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "localhost:4318" }, /OTEL_EXPORTER_OTLP_ENDPOINT must be an http:\/\/ or https:\/\/ URL/],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, /OTEL_EXPORTER_OTLP_\[TRACES_\]PROTOCOL must be http\/protobuf/],
    [{ OTEL_SDK_DISABLED: "yes" }, /OTEL_SDK_DISABLED must be true or false, not "yes"/],
    [{ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "2" }, /OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1/],
  ])("a bad OTEL_* value stops the start with exit code 2 and says which: %o", async (set, message) => {
    const dir = tempDir();
    dirs.push(dir);
    const run = await runLifeline(["start"], { ...otelEnv(set), LIFELINE_DATA_DIR: dir.path, LIFELINE_PORT: "0" });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toMatch(/ready at/);
  });
});

/**
 * The TCP ports process `pid` listens on, from Linux's /proc: its socket inodes, matched against
 * the LISTEN rows (state 0A) of /proc/net/tcp and tcp6.
 */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const row of readFileSync(table, "utf8").split("\n").slice(1)) {
      const cols = row.trim().split(/\s+/);
      if (cols[3] === "0A" && inodes.has(cols[9] ?? "")) ports.add(Number.parseInt(cols[1]!.split(":")[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}
