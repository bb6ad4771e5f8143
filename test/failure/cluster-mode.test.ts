import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hitInFlight, killWorkerMidAnswer } from "../../src/chaos/aimed-fault.ts";
import { checkFollow } from "../../src/chaos/follow-check.ts";
import { readTimeline } from "../../src/chaos/in-flight.ts";
import { createClient } from "../../src/client/index.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { redisAvailable, requireRedis, startCluster, type RedisCluster } from "../support/redis-harness.ts";
import { readAnswer } from "../support/sse-client.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

beforeEach((ctx) => requireRedis(ctx));

const request = (i: number) => simRequest(`cluster ${i}`, { max_tokens: 60, seed: i });

describe("distributed mode on a Redis Cluster", () => {
  let cluster: RedisCluster | undefined;
  const startLifeline = useLifelineProcesses();
  beforeAll(async () => {
    if (redisAvailable()) cluster = await startCluster();
  }, 60_000);
  afterAll(async () => {
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
    const [gateway, w1, w2] = await Promise.all([
      startLifeline("gateway", env),
      startLifeline("worker", { ...env, LIFELINE_WORKER_NAME: "w1" }),
      startLifeline("worker", { ...env, LIFELINE_WORKER_NAME: "w2" }),
    ]);
    const workers = new Map([
      ["w1", w1],
      ["w2", w2],
    ]);
    const client = createClient({ baseUrl: gateway.url, reconnect: { initialMs: 100, maxMs: 2000 } });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push((await client.start(request(i))).id);
      const following = ids.map((id) => checkFollow(client.follow(id)));
      const allEnded = new AbortController();
      void Promise.allSettled(following).then(() => allEnded.abort());

      const answers = ids.map((id, i) => ({ id, expectedChars: simText(request(i)).length }));
      const kill = await killWorkerMidAnswer(workers, { gateway: gateway.url, answers: () => answers, signal: allEnded.signal });
      expect(kill, "no worker was ever seen mid-answer").toBeDefined();

      const results = await Promise.all(following);
      results.forEach((result, i) => {
        expect(result.text).toBe(simText(request(i)));
        expect(result.problem).toBeUndefined();
        expect(result.applied).toEqual(result.applied.map((_, k) => k + 1));
      });
      let takenOver = 0;
      for (const [i, id] of ids.entries()) {
        const entries = await readAnswer(gateway.url, id);
        expectExactAnswer(entries, simText(request(i)));
        if (entries.filter((e) => e.type === "started").length > 1) takenOver += 1;
      }
      // The kill hit the answer it was aimed at in flight: another worker took it over.
      expect(hitInFlight((await readTimeline(gateway.url, kill!.answer.id))!, kill!)).toBe(true);
      expect(takenOver).toBeGreaterThan(0);
    } finally {
      client.close();
    }
  });
});
