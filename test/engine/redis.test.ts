import { afterAll, beforeAll, beforeEach, describe } from "vitest";
import type { RedisTarget } from "../../src/engine/redis/connection.ts";
import { RedisEngine } from "../../src/engine/redis/redis-engine.ts";
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
import { engineConformance } from "./conformance.ts";

// Real redis-server processes on free ports; outside CI the file skips loudly without redis-server.
beforeEach((ctx) => requireRedis(ctx));

let n = 0;
function harnessFor(target: () => RedisTarget) {
  return async () => {
    const prefix = `t${process.pid}x${n++}`;
    const engine = new RedisEngine({ target: target(), prefix, probeMs: 500 });
    const peer = new RedisEngine({ target: target(), prefix, probeMs: 500 });
    return {
      engine,
      peer,
      close: async () => {
        await engine.close();
        await peer.close();
      },
    };
  };
}

describe("redis standalone", () => {
  let server: RedisServer | undefined;
  beforeAll(async () => {
    if (redisAvailable()) server = await startStandalone();
  });
  afterAll(async () => server?.stop());
  engineConformance(
    "redis standalone",
    harnessFor(() => ({ mode: "standalone", url: server!.url })),
  );
});

describe("redis sentinel", () => {
  let group: SentinelGroup | undefined;
  beforeAll(async () => {
    if (redisAvailable()) group = await startSentinelGroup();
  });
  afterAll(async () => group?.stop());
  engineConformance(
    "redis sentinel",
    harnessFor(() => ({
      mode: "sentinel",
      sentinels: group!.sentinels.map((s) => ({ host: s.host, port: s.port })),
      masterName: group!.masterName,
    })),
  );
});

describe("redis cluster", () => {
  let cluster: RedisCluster | undefined;
  beforeAll(async () => {
    if (redisAvailable()) cluster = await startCluster();
  });
  afterAll(async () => cluster?.stop());
  engineConformance(
    "redis cluster",
    harnessFor(() => ({ mode: "cluster", nodes: cluster!.nodes.map((s) => ({ host: s.host, port: s.port })) })),
  );
});
