import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { startLifeline } from "../../src/chaos/lifeline-process.ts";
import { routes } from "../../src/core/routes.ts";
import { RedisKeys } from "../../src/engine/redis/keys.ts";
import type { WorkerStatus } from "../../src/engine/workers/port.ts";
import { startSimLlmProcess, type SimLlmProcess } from "../support/sim-llm-process.ts";
import { promtool, requirePrometheus, startPrometheus, type PrometheusServer } from "../support/prometheus.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { simRequest, simText } from "../support/sim-answer.ts";
import { readEvents } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { expressions, metricNames } from "./dashboard.ts";
import { until } from "../support/waits.ts";

const RULES = fileURLToPath(new URL("../../deploy/prometheus/alerts.yml", import.meta.url));
const DASHBOARD = fileURLToPath(new URL("../../deploy/grafana/lifeline-dashboard.json", import.meta.url));
const ALERTS = ["LifelineStuckAnswers", "LifelineTakeovers", "LifelineBreakerOpen", "LifelineRedisReset"] as const;
/** Prometheus evaluates every second; a loaded machine may take a while to scrape, evaluate and show it. */
const ALERT_WAIT_MS = 120_000;

describe("the alert rules file", () => {
  it("passes promtool check rules", (ctx) => {
    requirePrometheus(ctx);
    const checked = promtool(["check", "rules", RULES]);
    expect(checked.output).toContain(`SUCCESS: ${ALERTS.length} rules found`);
    expect(checked.code).toBe(0);
  });

  it("passes its promtool unit tests (each alert quiet before its condition, firing during it, resolved after)", (ctx) => {
    requirePrometheus(ctx);
    const tested = promtool(["test", "rules", RULES.replace(/alerts\.yml$/, "alerts.test.yml")]);
    expect(tested.output).toContain("SUCCESS");
    expect(tested.code).toBe(0);
  });
});

/**
 * A distributed deployment on a real Redis (a gateway and two workers, each its own process), a
 * sim-llm behind two providers (one that fails every call, one that stalls), and a real Prometheus
 * scraping them every second with deploy/prometheus/alerts.yml as it ships.
 */
describe("the alerts, on a real Prometheus scraping a distributed deployment driven into each condition", () => {
  const dir = tempDir("lifeline-alerts-");
  const prefix = `alerts${process.pid}`;
  let redis: RedisServer;
  let sim: SimLlmProcess;
  let gateway: LifelineProcess;
  const workers: LifelineProcess[] = [];
  let prometheus: PrometheusServer;

  beforeEach((ctx) => {
    requireRedis(ctx);
    requirePrometheus(ctx);
  });

  beforeAll(async () => {
    if (!redisAvailable() || !promtool(["--version"]).output) return;
    [redis, sim] = await Promise.all([startStandalone(), startSimLlmProcess(["--tokens-per-second", "50"])]);
    const config = join(dir.path, "models.json");
    writeFileSync(
      config,
      JSON.stringify({
        providers: {
          flaky: {
            type: "openai-compatible",
            baseUrl: `${sim.url}/v1`,
            headers: { "x-sim-fault": "error;status=500" },
            breaker: { failureThreshold: 1 },
          },
          stalling: { type: "openai-compatible", baseUrl: `${sim.url}/v1`, headers: { "x-sim-fault": "stall;after=3" } },
        },
        models: {
          flaky: { provider: "flaky", retry: { maxAttempts: 1 } },
          // Its idle timeout is far longer than the test: the answer stays running with no entry.
          stalls: { provider: "stalling", timeouts: { firstTokenMs: 600_000, idleMs: 600_000, totalMs: 600_000 } },
        },
      }),
    );
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: redis.url,
      LIFELINE_REDIS_PREFIX: prefix,
      LIFELINE_CONFIG: config,
      // Long enough that a loaded machine renews in time (a missed renewal would be a takeover of its own).
      LIFELINE_LEASE_MS: "5000",
      LIFELINE_SIM_TOKENS_PER_SECOND: "10",
      // An answer silent for 2 s is stuck: the test need not wait out the 20 s default.
      LIFELINE_STUCK_AFTER_MS: "2000",
      // The read models (sqlite, beside the engine's other local files) of this deployment alone.
      LIFELINE_DATA_DIR: join(dir.path, "data"),
    };
    const started = await Promise.all([
      startLifeline("gateway", env),
      startLifeline("worker", { ...env, LIFELINE_WORKER_NAME: "w1", LIFELINE_METRICS_PORT: "0" }),
      startLifeline("worker", { ...env, LIFELINE_WORKER_NAME: "w2", LIFELINE_METRICS_PORT: "0" }),
    ]);
    gateway = started[0];
    workers.push(started[1], started[2]);
    prometheus = await startPrometheus({
      jobs: [
        { job: "lifeline-gateway", targets: [new URL(gateway.url).host] },
        { job: "lifeline-worker", targets: workers.map((w) => new URL(metricsUrlOf(w)).host) },
      ],
      ruleFiles: [RULES],
    });
    await prometheus.waitForTargetsUp();
  }, 180_000);

  afterAll(async () => {
    await Promise.all([gateway?.kill(), ...workers.map((w) => w.kill())]);
    await Promise.all([prometheus?.stop(), sim?.stop(), redis?.stop()]);
    dir.remove();
  });

  const firing = async (name: string): Promise<Record<string, string>[]> =>
    (await prometheus.alerts()).filter((a) => a.labels.alertname === name && a.state === "firing").map((a) => a.labels);
  const waitForFiring = (name: string): Promise<void> =>
    until(async () => (await firing(name)).length > 0, ALERT_WAIT_MS, `${name} firing\n${prometheus.output()}`);
  const start = async (body: object): Promise<string> => {
    const res = await fetch(`${gateway.url}${routes.generations()}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  /**
   * Does to a log what a failover to a replica that lagged does: the entries after `keepThrough`
   * are gone and the log's head says so, in one script so that a worker appending meanwhile cannot
   * slip an entry in between. Returns the last offset the log had (`Infinity` keeps everything).
   */
  const loseEntriesAfter = async (id: string, keepThrough: number): Promise<number> => {
    const keys = new RedisKeys(prefix);
    const raw = new Redis(redis.url);
    try {
      const last = await raw.eval(LOSE_ENTRIES, 2, keys.log(id), keys.meta(id), Number.isFinite(keepThrough) ? keepThrough : -1);
      return Number(last);
    } finally {
      raw.disconnect();
    }
  };
  const statusOf = async (id: string): Promise<string> =>
    ((await (await fetch(`${gateway.url}${routes.generation(id)}`)).json()) as { status: string }).status;

  it("no alert fires while every answer goes well", async () => {
    const id = await start(simRequest("all is well", { max_tokens: 5 }));
    await until(async () => (await statusOf(id)) === "completed", 60_000, "a clean answer");
    await prometheus.waitForTargetsUp();
    expect((await prometheus.alerts()).map((a) => a.labels.alertname)).toEqual([]);
  }, 180_000);

  it("LifelineStuckAnswers fires once an answer's model stalls and its log stops growing for longer than the idle timeout", async () => {
    expect(await firing("LifelineStuckAnswers")).toEqual([]);
    const id = await start({ model: "stalls", messages: [{ role: "user", content: "stall" }], max_tokens: 50 });
    await until(async () => (await statusOf(id)) === "running", 60_000, "the stalling answer to run");
    await waitForFiring("LifelineStuckAnswers");
    expect(await statusOf(id)).toBe("running");
  }, 240_000);

  it("LifelineBreakerOpen fires for the provider whose every call fails, and for no other", async () => {
    expect(await firing("LifelineBreakerOpen")).toEqual([]);
    const id = await start({ model: "flaky", messages: [{ role: "user", content: "fail" }], max_tokens: 5 });
    await until(async () => (await statusOf(id)) === "failed", 60_000, "the flaky answer to fail");
    await waitForFiring("LifelineBreakerOpen");
    expect((await firing("LifelineBreakerOpen")).map((labels) => labels.provider)).toEqual(["flaky"]);
  }, 240_000);

  it("LifelineTakeovers fires once a worker is SIGKILLed mid-answer and another takes the answer over", async () => {
    expect(await firing("LifelineTakeovers")).toEqual([]);
    const id = await start(simRequest("taken over", { max_tokens: 400 }));
    let holder: string | undefined;
    await until(
      async () => {
        const { workers: reports } = (await (await fetch(`${gateway.url}${routes.opsWorkers()}`)).json()) as { workers: WorkerStatus[] };
        holder = reports.find((r) => r.leases.some((l) => l.id === id))?.worker;
        return holder !== undefined;
      },
      60_000,
      "a worker to report the answer's lease",
    );
    const victim = workers.find((w) => w.output().includes(`Lifeline worker ${holder} is running`))!;
    await victim.kill();
    await waitForFiring("LifelineTakeovers");
  }, 240_000);

  it("LifelineRedisReset fires once Redis has lost acknowledged entries and a reader's cursor named one", async () => {
    expect(await firing("LifelineRedisReset")).toEqual([]);
    const id = await start(simRequest("lost entries", { max_tokens: 6 }));
    const read = await readEvents(gateway.url, id);
    const cursor = read.messages.at(-1)!.id!;
    // What a failover to a replica that lagged does to a log: its newest entries are gone.
    await loseEntriesAfter(id, 2);
    const resumed = await readEvents(gateway.url, id, { from: cursor, cutAfter: 1 });
    expect(resumed.messages[0]?.event).toBe("reset");
    await waitForFiring("LifelineRedisReset");
  }, 240_000);

  it("the alert's other half: a worker that finds its log shorter than it wrote repairs it, and the repairs reach Prometheus", async () => {
    const repaired = async (): Promise<number> => {
      const { result } = await prometheus.api<{ result: { value: [number, string] }[] }>("query", {
        query: "sum(lifeline_repaired_entries_total)",
      });
      return Number(result[0]?.value[1] ?? 0);
    };
    expect(await repaired()).toBe(0);
    // At 10 tokens a second, some 50 tokens still to write once the entries vanish: the worker finds out mid-answer.
    const request = simRequest("repaired", { max_tokens: 60 });
    const id = await start(request);
    await until(async () => (await loseEntriesAfter(id, Infinity)) >= 8, 60_000, "the answer to stream");
    // Its newest entries vanish mid-answer, as in a failover to a replica that lagged.
    await loseEntriesAfter(id, 4);
    await until(async () => (await statusOf(id)) === "completed", 120_000, "the answer to complete");
    const text = ((await (await fetch(`${gateway.url}${routes.generation(id)}`)).json()) as { text: string }).text;
    expect(text).toBe(simText(request));
    await until(async () => (await repaired()) > 0, ALERT_WAIT_MS, "repaired entries in Prometheus");
    expect(await firing("LifelineRedisReset")).not.toEqual([]);
  }, 240_000);

  it("every expression of the Grafana dashboard parses and runs on this Prometheus, and names only metrics Lifeline exports", async () => {
    const exprs = expressions(DASHBOARD);
    expect(exprs.length).toBeGreaterThan(10);
    const exported = new Set(await prometheus.api<string[]>("label/__name__/values"));
    for (const expr of exprs) {
      await expect(prometheus.api("query", { query: expr }), expr).resolves.toBeDefined();
      for (const name of metricNames(expr)) expect(exported.has(name) && name.startsWith("lifeline_"), `${name} in ${expr}`).toBe(true);
    }
  }, 120_000);
});

/** KEYS: log, meta; ARGV: the last offset to keep (-1: keep all). Returns the last offset the log had. */
const LOSE_ENTRIES = `
local last = tonumber(redis.call('HGET', KEYS[2], 'last'))
local keep = tonumber(ARGV[1])
if keep < 0 or keep >= last then return last end
for offset = keep + 1, last do redis.call('XDEL', KEYS[1], offset .. '-0') end
redis.call('XSETID', KEYS[1], keep .. '-0')
redis.call('HSET', KEYS[2], 'last', keep)
return last`;

/** Where a worker started with LIFELINE_METRICS_PORT serves its metrics, as it said at start. */
function metricsUrlOf(worker: LifelineProcess): string {
  const said = /metrics at (http:\/\/\S+)\/metrics/.exec(worker.output());
  if (!said?.[1]) throw new Error(`the worker did not say where its metrics are:\n${worker.output()}`);
  return said[1];
}
