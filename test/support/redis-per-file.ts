import { afterAll, beforeAll } from "vitest";
import { redisAvailable, startCluster, startStandalone, type RedisCluster, type RedisServer } from "./redis-harness.ts";

/** The servers a test file runs against, once they have started. */
export interface RedisPerFile {
  server?: RedisServer;
  cluster?: RedisCluster;
}

/**
 * A standalone `redis-server` and a three-node Cluster for one test file: started before its first
 * test and stopped after its last (neither where there is no `redis-server`; `requireRedis` then
 * skips or fails each test).
 */
export function redisPerFile(): RedisPerFile {
  const started: RedisPerFile = {};
  beforeAll(async () => {
    if (!redisAvailable()) return;
    [started.server, started.cluster] = await Promise.all([startStandalone(), startCluster()]);
  });
  afterAll(async () => {
    await Promise.all([started.server?.stop(), started.cluster?.stop()]);
  });
  return started;
}
