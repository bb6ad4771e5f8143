import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { followAnswer } from "../support/follower.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { startLifeline, type LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { redisAvailable, requireRedis, startCluster, type RedisCluster } from "../support/redis-harness.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";

beforeEach((ctx) => requireRedis(ctx));

const request = (i: number) => ({ model: "sim", messages: [{ role: "user" as const, content: `cluster ${i}` }], max_tokens: 60, seed: i });
const simText = (i: number): string => simTokens(request(i)).join("");

describe("distributed mode on a Redis Cluster", () => {
  let cluster: RedisCluster | undefined;
  const processes: LifelineProcess[] = [];
  beforeAll(async () => {
    if (redisAvailable()) cluster = await startCluster();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill()));
    await cluster?.stop();
  });

  it("answers spread over three shards survive a worker SIGKILLed mid-answer", async () => {
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_CLUSTER_NODES: cluster!.nodes.map((n) => `${n.host}:${n.port}`).join(","),
      LIFELINE_REDIS_PREFIX: `cl${process.pid}`,
      LIFELINE_LEASE_MS: "2000",
      LIFELINE_SIM_TOKENS_PER_SECOND: "20",
    };
    const started = await Promise.all([
      startLifeline("gateway", env),
      startLifeline("worker", { ...env, LIFELINE_WORKER_NAME: "w1" }),
      startLifeline("worker", { ...env, LIFELINE_WORKER_NAME: "w2" }),
    ]);
    processes.push(...started);
    const [gateway, w1] = started;
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await startGeneration(gateway.url, request(i)));
    const following = ids.map((id) => followAnswer(id, { gateways: [gateway.url], deadlineMs: 60_000 }));
    await new Promise((r) => setTimeout(r, 1000));
    await w1.kill();
    const results = await Promise.all(following);
    results.forEach((result, i) => {
      expect(result.text).toBe(simText(i));
      expect(result.applied).toEqual(result.applied.map((_, k) => k + 1));
    });
    let takenOver = 0;
    for (const [i, id] of ids.entries()) {
      const entries = entriesOf((await readEvents(gateway.url, id)).messages);
      expectExactAnswer(entries, simText(i));
      if (entries.filter((e) => e.type === "started").length > 1) takenOver += 1;
    }
    expect(takenOver).toBeGreaterThan(0);
  });
});
