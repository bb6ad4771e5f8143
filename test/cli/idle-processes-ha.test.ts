import { afterAll, beforeAll, describe, it } from "vitest";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import {
  redisAvailable,
  requireRedis,
  startCluster,
  startSentinelGroup,
  type RedisCluster,
  type SentinelGroup,
} from "../support/redis-harness.ts";
import { idleWorkerThenWork } from "./support/idle-processes.ts";

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
