import { afterAll, beforeAll } from "vitest";
import { startLifeline, type LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { redisAvailable, startSentinelGroup, type SentinelGroup } from "./redis-harness.ts";

/** A Sentinel group for a describe block, and Lifeline processes pointed at it; all stopped after. */
export interface SentinelDeployment {
  group(): SentinelGroup;
  /** Environment for `lifeline gateway|worker` on this group, under a key prefix of its own. */
  env(prefix: string, extra?: Record<string, string>): Record<string, string>;
  start(command: "gateway" | "worker", env: Record<string, string>): Promise<LifelineProcess>;
}

export function useSentinelDeployment(): SentinelDeployment {
  let group: SentinelGroup | undefined;
  const processes: LifelineProcess[] = [];
  beforeAll(async () => {
    if (redisAvailable()) group = await startSentinelGroup();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill()));
    await group?.stop();
  });
  const self: SentinelDeployment = {
    group: () => {
      if (!group) throw new Error("no Sentinel group (redis-server missing?)");
      return group;
    },
    env: (prefix, extra = {}) => ({
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_SENTINELS: self
        .group()
        .sentinels.map((s) => `${s.host}:${s.port}`)
        .join(","),
      LIFELINE_REDIS_MASTER_NAME: self.group().masterName,
      LIFELINE_REDIS_PREFIX: `${prefix}${process.pid}`,
      LIFELINE_HEARTBEAT_MS: "1000",
      ...extra,
    }),
    start: async (command, env) => {
      const proc = await startLifeline(command, env);
      processes.push(proc);
      return proc;
    },
  };
  return self;
}
