import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { followAnswer } from "../support/follower.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { startLifeline, type LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";

beforeEach((ctx) => requireRedis(ctx));

const request = (i: number) => ({ model: "sim", messages: [{ role: "user" as const, content: `shutdown ${i}` }], max_tokens: 60, seed: i });
const simText = (i: number): string => simTokens(request(i)).join("");
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("graceful shutdown in the distributed mode", () => {
  let redis: RedisServer | undefined;
  const processes: LifelineProcess[] = [];
  beforeAll(async () => {
    if (redisAvailable()) redis = await startStandalone();
  });
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill()));
    await redis?.stop();
  });
  const start = async (command: "gateway" | "worker", env: Record<string, string>): Promise<LifelineProcess> => {
    const proc = await startLifeline(command, {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: redis!.url,
      LIFELINE_SIM_TOKENS_PER_SECOND: "20",
      ...env,
    });
    processes.push(proc);
    return proc;
  };

  it("SIGTERM on a gateway ends its streams and clients resume on another", async () => {
    const env = { LIFELINE_REDIS_PREFIX: `gw${process.pid}`, LIFELINE_LEASE_MS: "5000" };
    const [a, b] = await Promise.all([start("gateway", env), start("gateway", env), start("worker", env)]);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await startGeneration(a.url, request(i)));
    const following = ids.map((id) => followAnswer(id, { gateways: [a.url, b.url], deadlineMs: 60_000 }));
    await sleep(1000);
    expect(await a.terminate()).toBe(0);
    const results = await Promise.all(following);
    results.forEach((result, i) => {
      expect(result.text).toBe(simText(i));
      expect(result.applied).toEqual(result.applied.map((_, k) => k + 1));
      expect(result.gatewaysUsed).toEqual(new Set([a.url, b.url]));
    });
  });

  it("SIGTERM on a worker hands its answers over at once, without waiting for the lease", async () => {
    const env = { LIFELINE_REDIS_PREFIX: `wk${process.pid}`, LIFELINE_LEASE_MS: "600000" };
    const gateway = await start("gateway", env);
    const first = await start("worker", { ...env, LIFELINE_WORKER_NAME: "first" });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await startGeneration(gateway.url, request(100 + i)));
    await sleep(800);
    await start("worker", { ...env, LIFELINE_WORKER_NAME: "second" });
    expect(await first.terminate()).toBe(0);
    for (const [i, id] of ids.entries()) {
      const entries = entriesOf((await readEvents(gateway.url, id)).messages);
      expectExactAnswer(entries, simText(100 + i));
      const workers = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started").map((e) => e.worker);
      expect(workers).toEqual(["first", "second"]);
    }
  });
});
