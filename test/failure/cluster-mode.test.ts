import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { faultMidAnswer, hitInFlight, killWorkerMidAnswer } from "../../src/chaos/aimed-fault.ts";
import { checkFollow } from "../../src/chaos/follow-check.ts";
import { readTimeline } from "../../src/chaos/in-flight.ts";
import { createClient } from "../../src/client/index.ts";
import { expectFollowsExact, startFailoverFleet } from "../support/failover-fleet.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { redisAvailable, requireRedis, startCluster, type RedisCluster } from "../support/redis-harness.ts";
import { readAnswer } from "../support/sse-client.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

beforeEach((ctx) => requireRedis(ctx));

const request = (i: number) => simRequest(`cluster ${i}`, { max_tokens: 60, seed: i });

/** A Lifeline process's environment on `cluster`, its keys under `prefix`. */
const clusterEnv = (cluster: RedisCluster, prefix: string, extra: Record<string, string> = {}): Record<string, string> => ({
  LIFELINE_ENGINE: "redis",
  LIFELINE_REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(","),
  LIFELINE_REDIS_PREFIX: `${prefix}${process.pid}`,
  ...extra,
});

/** The primary (its index in `nodes`) serving the slot of answer `id`: the harness gives primary i the slots from floor(i × 16384 / 3) on. */
async function shardOf(redis: Redis, id: string): Promise<number> {
  const slot = Number(await redis.cluster("KEYSLOT", `{${id}}`));
  return [2, 1, 0].find((i) => slot >= Math.floor((i * 16_384) / 3))!;
}

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
    const env = clusterEnv(cluster!, "cl", { LIFELINE_LEASE_MS: "2000", LIFELINE_SIM_TOKENS_PER_SECOND: "20" });
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

describe("distributed mode on a Redis Cluster whose shards have replicas", () => {
  let cluster: RedisCluster | undefined;
  const startLifeline = useLifelineProcesses();
  beforeAll(async () => {
    if (redisAvailable()) cluster = await startCluster({ primaries: 3, replicas: 1 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("a create, a claim and an answer's end wait for a replica of the shard they were written to", async () => {
    const env = clusterEnv(cluster!, "clw");
    const waits = async (): Promise<number[]> =>
      Promise.all(
        cluster!.nodes.map(async (node) => {
          const redis = new Redis({ host: node.host, port: node.port, lazyConnect: true });
          try {
            await redis.connect();
            return Number(/cmdstat_wait:calls=(\d+)/.exec(await redis.info("commandstats"))?.[1] ?? 0);
          } finally {
            redis.disconnect();
          }
        }),
      );
    const before = await waits();
    const [gateway] = await Promise.all([startLifeline("gateway", env), startLifeline("worker", { ...env, LIFELINE_WORKER_NAME: "w" })]);
    const ask = (i: number) => simRequest(`cluster wait ${i}`, { max_tokens: 5, seed: i });
    const ids: string[] = [];
    const client = createClient({ baseUrl: gateway.url });
    try {
      // One answer at a time: WAITs that come together on one connection are shared.
      for (let i = 0; i < 12; i++) {
        ids.push((await client.start(ask(i))).id);
        expectExactAnswer(await readAnswer(gateway.url, ids[i]!), simText(ask(i)));
      }
    } finally {
      client.close();
    }
    // Each primary holding an answer's keys was asked to WAIT: for its create, claim and end.
    const seed = new Redis({ host: cluster!.nodes[0]!.host, port: cluster!.nodes[0]!.port, lazyConnect: true });
    await seed.connect();
    const answersPerShard = [0, 0, 0];
    for (const id of ids) answersPerShard[await shardOf(seed, id)]! += 1;
    seed.disconnect();
    const after = await waits();
    for (const [shard, answers] of answersPerShard.entries()) {
      if (answers > 0)
        expect(after[shard]! - before[shard]!, `WAITs on shard ${shard}, which holds ${answers} answers`).toBeGreaterThanOrEqual(
          2 * answers,
        );
    }
  });

  it("a shard's primary SIGKILLed mid-answer: its replica takes over, and every answer, on that shard or not, ends exact", async () => {
    const env = clusterEnv(cluster!, "clf", { LIFELINE_LEASE_MS: "5000", LIFELINE_SIM_TOKENS_PER_SECOND: "16" });
    const { gateway, client } = await startFailoverFleet(startLifeline, env);
    const ask = (i: number) => simRequest(`cluster failover ${i}`, { max_tokens: 80, seed: i });
    const killed = cluster!.nodes[0]!;
    const survivor = new Redis({ host: cluster!.nodes[1]!.host, port: cluster!.nodes[1]!.port, lazyConnect: true });
    try {
      await survivor.connect();
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) ids.push((await client.start(ask(i))).id);
      const following = ids.map((id) => checkFollow(client.follow(id)));
      const allEnded = new AbortController();
      void Promise.allSettled(following).then(() => allEnded.abort());
      // The logs on the shard that dies: the first primary serves the lowest third of the slots.
      const onKilledShard = new Set<string>();
      for (const id of ids) if ((await shardOf(survivor, id)) === 0) onKilledShard.add(id);
      expect(onKilledShard.size, "no answer's log on the shard to kill").toBeGreaterThan(0);
      const answers = ids.map((id, i) => ({ id, expectedChars: simText(ask(i)).length })).filter((a) => onKilledShard.has(a.id));

      const failover = await faultMidAnswer("redis", `primary ${killed.port}`, () => cluster!.killPrimary(0), {
        gateway,
        answers: () => answers,
        signal: allEnded.signal,
      });
      expect(failover, "no answer on that shard was streaming when its primary was to die").toBeDefined();

      const results = await Promise.all(following);
      await expectFollowsExact(gateway, ids, results, (i) => simText(ask(i)));
      for (const [i, id] of ids.entries()) expectExactAnswer(await readAnswer(gateway, id), simText(ask(i)));
      expect(hitInFlight((await readTimeline(gateway, failover!.answer.id))!, failover!)).toBe(true);
    } finally {
      survivor.disconnect();
      client.close();
    }
  }, 180_000);
});
