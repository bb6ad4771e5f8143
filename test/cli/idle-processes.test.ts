import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import type { LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { useLifelineProcesses, type StartLifeline } from "../support/lifeline-processes.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import {
  redisAvailable,
  requireRedis,
  startCluster,
  startSentinelGroup,
  startStandalone,
  type RedisCluster,
  type RedisServer,
  type SentinelGroup,
} from "../support/redis-harness.ts";
import { runLifeline } from "../support/run-cli.ts";
import { readAnswer, startGeneration } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

const BIN = fileURLToPath(new URL("../../bin/lifeline", import.meta.url));
const request = simRequest("wake me when there is work", { max_tokens: 24, seed: 3 });
const expected = simText(request);

/** Resolves once `pattern` has appeared `times` times in what the process wrote. */
async function outputShows(proc: LifelineProcess, pattern: RegExp, times = 1): Promise<void> {
  const global = new RegExp(pattern.source, "g");
  await expect.poll(() => proc.output().match(global)?.length ?? 0, { timeout: 30_000, interval: 50 }).toBeGreaterThanOrEqual(times);
}

/** An idle spell of several claim and watch periods (the sqlite watch looks every 25 ms). */
const idle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1500));

const running = (proc: LifelineProcess): boolean => proc.child.exitCode === null && proc.child.signalCode === null;

/**
 * The shape a user deploys: a worker started first, idle, then a gateway started separately on
 * the same engine; the worker takes the answer, finishes it exactly and keeps running.
 */
async function idleWorkerThenWork(env: Record<string, string>, start: StartLifeline): Promise<void> {
  const worker = await start("worker", { ...env, LIFELINE_WORKER_NAME: "idle-worker", LIFELINE_LOG_LEVEL: "info" });
  await outputShows(worker, /"msg":"waiting for work"/);
  // The gateway starts during the worker's idle spell: nothing reaches the worker before the answer is asked for.
  const [gateway] = await Promise.all([start("gateway", env), idle()]);
  expect(running(worker)).toBe(true);

  const id = await startGeneration(gateway.url, request);
  const entries = await readAnswer(gateway.url, id);
  expectExactAnswer(entries, expected);
  const started = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started");
  expect(started.map((e) => e.worker)).toEqual(["idle-worker"]);

  // Still there after the answer, idle again, and said so once for this spell, not per poll.
  await outputShows(worker, /"msg":"waiting for work"/, 2);
  await idle();
  expect(running(worker)).toBe(true);
  expect(worker.output().match(/"msg":"waiting for work"/g)).toHaveLength(2);
  expect(await worker.terminate()).toBe(0);
  expect(await gateway.terminate()).toBe(0);
}

describe("processes run until a signal, however long they sit idle", () => {
  const start = useLifelineProcesses();
  const dirs: { remove(): void }[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) d.remove();
  });
  const dataDir = (): string => {
    const d = tempDir();
    dirs.push(d);
    return d.path;
  };

  it("a sqlite worker started first waits, takes an answer from a separately started gateway, finishes it, and exits 0 on SIGTERM", async () => {
    await idleWorkerThenWork({ LIFELINE_DATA_DIR: dataDir(), LIFELINE_SIM_TOKENS_PER_SECOND: "200" }, start);
  });

  it("lifeline start on the memory engine stays up while idle and exits 0 on SIGTERM", async () => {
    const node = await start("start", { LIFELINE_ENGINE: "memory", LIFELINE_LOG_LEVEL: "info", LIFELINE_SIM_TOKENS_PER_SECOND: "200" });
    await outputShows(node, /"msg":"waiting for work"/);
    await idle();
    const entries = await readAnswer(node.url, await startGeneration(node.url, request));
    expectExactAnswer(entries, expected);
    await idle();
    expect(running(node)).toBe(true);
    expect(await node.terminate()).toBe(0);
  });

  it("sim-llm stays up while idle, answers afterwards, and exits 0 on SIGTERM", async () => {
    const child = spawn(process.execPath, [BIN, "sim-llm", "--port", "0", "--tokens-per-second", "1000"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await expect.poll(() => /listening at (http:\/\/\S+)/.exec(out)?.[1], { timeout: 30_000, interval: 50 }).toBeDefined();
      const url = /listening at (http:\/\/\S+)/.exec(out)![1]!;
      await idle();
      expect(child.exitCode).toBeNull();
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "sim",
          messages: request.messages,
          max_tokens: request.max_tokens,
          seed: request.seed,
          stream: true,
        }),
      });
      expect(res.status).toBe(200);
      const body = await res.text();
      const text = body
        .split("\n")
        .filter((line) => line.startsWith("data: {"))
        .map((line) => (JSON.parse(line.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "")
        .join("");
      expect(text).toBe(expected);
      await idle();
      expect(child.exitCode).toBeNull();
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("a port that is taken ends the start with status 1 and says why", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const run = await runLifeline(["start", "--engine", "memory", "--port", String(port)]);
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/could not start: .*EADDRINUSE/);
      const sim = await runLifeline(["sim-llm", "--port", String(port)]);
      expect(sim.status).toBe(1);
      expect(sim.stderr).toMatch(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });

  it("an engine that never answers ends the start with status 1 once its retry budget is spent", async (ctx) => {
    requireRedis(ctx);
    // A port nothing listens on: taken and released at once.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as { port: number };
    await new Promise((resolve) => probe.close(resolve));
    const run = await runLifeline(["worker", "--engine", "redis", "--redis-url", `redis://127.0.0.1:${port}`, "--engine-retry-ms", "1500"]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/could not start: the redis engine has not answered for 1500 ms/);
  });
});

describe("on Redis, processes run until a signal and stop when the engine is gone for good", () => {
  let server: RedisServer | undefined;
  const start = useLifelineProcesses();
  beforeAll(async () => {
    if (redisAvailable()) server = await startStandalone();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("a Redis worker started first waits, takes an answer from a separately started gateway, finishes it, and exits 0 on SIGTERM", async (ctx) => {
    requireRedis(ctx);
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: server!.url,
      LIFELINE_REDIS_PREFIX: `idle${process.pid}`,
      LIFELINE_SIM_TOKENS_PER_SECOND: "200",
    };
    await idleWorkerThenWork(env, start);
  });

  it("a worker whose Redis goes away for longer than its retry budget exits 1 and says why", async (ctx) => {
    requireRedis(ctx);
    const doomed = await startStandalone();
    try {
      const worker = await start("worker", { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: doomed.url, LIFELINE_ENGINE_RETRY_MS: "2000" });
      await doomed.kill();
      const code = await new Promise<number | null>((resolve) => worker.child.once("exit", resolve));
      expect(code).toBe(1);
      expect(worker.output()).toMatch(/lifeline: worker stops: the redis engine has not answered for 2000 ms/);
    } finally {
      await doomed.stop();
    }
  });

  it("a SIGTERM while Redis is down ends the worker with 0, without waiting out the retry budget", async (ctx) => {
    requireRedis(ctx);
    const doomed = await startStandalone();
    try {
      const worker = await start("worker", {
        LIFELINE_ENGINE: "redis",
        LIFELINE_REDIS_URL: doomed.url,
        LIFELINE_ENGINE_RETRY_MS: "600000",
        LIFELINE_LOG_LEVEL: "info",
      });
      await doomed.kill();
      await outputShows(worker, /"msg":"the engine does not answer"/);
      // Nothing can be handed back to an engine that is gone: the stop closes it first. A stop that
      // waited for the Redis client to give up its reconnects (about 40 s) would outlast this test.
      expect(await worker.terminate()).toBe(0);
    } finally {
      await doomed.stop();
    }
  }, 25_000);
});

describe("on Sentinel and Cluster, an idle worker keeps running and takes work", () => {
  let group: SentinelGroup | undefined;
  let cluster: RedisCluster | undefined;
  const start = useLifelineProcesses();
  beforeAll(async () => {
    if (!redisAvailable()) return;
    [group, cluster] = await Promise.all([startSentinelGroup(), startCluster()]);
  }, 90_000);
  afterAll(async () => {
    await Promise.all([group?.stop(), cluster?.stop()]);
  });

  it("through Sentinel", async (ctx) => {
    requireRedis(ctx);
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_SENTINELS: group!.sentinels.map((s) => `${s.host}:${s.port}`).join(","),
      LIFELINE_REDIS_MASTER_NAME: group!.masterName,
      LIFELINE_REDIS_PREFIX: `idles${process.pid}`,
      LIFELINE_SIM_TOKENS_PER_SECOND: "200",
    };
    await idleWorkerThenWork(env, start);
  });

  it("on a Cluster", async (ctx) => {
    requireRedis(ctx);
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_CLUSTER_NODES: cluster!.nodes.map((n) => `${n.host}:${n.port}`).join(","),
      LIFELINE_REDIS_PREFIX: `idlec${process.pid}`,
      LIFELINE_SIM_TOKENS_PER_SECOND: "200",
    };
    await idleWorkerThenWork(env, start);
  });
});
