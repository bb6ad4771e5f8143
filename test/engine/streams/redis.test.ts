import { afterAll, beforeAll, beforeEach, describe } from "vitest";
import type { RedisTarget } from "../../../src/engine/redis/connection.ts";
import { RedisStreamStore } from "../../../src/engine/streams/redis.ts";
import {
  redisAvailable,
  requireRedis,
  startCluster,
  startStandalone,
  type RedisCluster,
  type RedisServer,
} from "../../support/redis-harness.ts";
import { streamStoreConformance } from "./conformance.ts";

// Real redis-server processes on free ports; outside CI the file skips loudly without redis-server.
beforeEach((ctx) => requireRedis(ctx));

let n = 0;
function harnessFor(target: () => RedisTarget) {
  return async () => {
    const prefix = `s${process.pid}x${n++}`;
    const store = new RedisStreamStore({ target: target(), prefix });
    const peer = new RedisStreamStore({ target: target(), prefix });
    return {
      store,
      peer,
      close: async () => {
        await store.close();
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
  streamStoreConformance(
    "redis standalone",
    harnessFor(() => ({ mode: "standalone", url: server!.url })),
  );
});

// Every key of a stream shares one hash tag: each commit is one script on one slot of the Cluster.
describe("redis cluster", () => {
  let cluster: RedisCluster | undefined;
  beforeAll(async () => {
    if (redisAvailable()) cluster = await startCluster();
  });
  afterAll(async () => cluster?.stop());
  streamStoreConformance(
    "redis cluster",
    harnessFor(() => ({ mode: "cluster", nodes: cluster!.nodes.map((node) => ({ host: node.host, port: node.port })) })),
  );
});
