import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RedisTarget } from "../../../src/engine/redis/connection.ts";
import { RedisKeys } from "../../../src/engine/redis/keys.ts";
import { RedisStreamStore } from "../../../src/engine/streams/redis.ts";
import { Streams } from "../../../src/engine/streams/streams.ts";
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

// Redis drops the keys of a stream once it has expired (plus a margin, 0 here), so expired streams
// do not stay in memory; never those of a stream that forks hold.
describe("redis reclaims expired streams", () => {
  let server: RedisServer | undefined;
  beforeAll(async () => {
    if (redisAvailable()) server = await startStandalone();
  });
  afterAll(async () => server?.stop());

  it("sets the keys' expiry from the TTL or expiry time, moves it on each touch, and lifts it while forks stand", async () => {
    const prefix = `r${process.pid}`;
    const store = new RedisStreamStore({ target: { mode: "standalone", url: server!.url }, prefix, reclaimAfterMs: 0 });
    const raw = new Redis(server!.url);
    const keys = new RedisKeys(prefix);
    try {
      const streams = new Streams(store);
      const plain = { contentType: "text/plain", closed: false, data: Buffer.from("x") };
      await streams.create("forever", plain);
      expect(await raw.pttl(keys.streamMeta("forever"))).toBe(-1);
      await streams.create("fixed", { ...plain, expiresAt: "2100-01-01T00:00:00Z", expiresAtMs: Date.parse("2100-01-01T00:00:00Z") });
      expect(await raw.pexpiretime(keys.streamChunks("fixed"))).toBe(Date.parse("2100-01-01T00:00:00Z"));

      await streams.create("source", { ...plain, ttlSeconds: 3600 });
      expect(await raw.pttl(keys.streamMeta("source"))).toBeGreaterThan(0);
      expect((await streams.create("fork", { contentType: "", closed: false, data: undefined, forkedFrom: "source" })).kind).toBe(
        "created",
      );
      expect(await raw.pttl(keys.streamMeta("source"))).toBe(-1);
      expect(await raw.pttl(keys.streamChunks("source"))).toBe(-1);
      // The fork inherits the source's TTL, but Redis never drops a fork: its source counts it.
      expect(await raw.pttl(keys.streamMeta("fork"))).toBe(-1);
      await store.touch("fork", Date.now() + 1000);
      expect(await raw.pttl(keys.streamMeta("fork"))).toBe(-1);
      expect(await streams.delete("fork")).toBe("deleted");
      expect(await raw.pttl(keys.streamMeta("source"))).toBeGreaterThan(0);

      await streams.create("brief", { ...plain, ttlSeconds: 1 });
      const before = await raw.pexpiretime(keys.streamMeta("brief"));
      await store.touch("brief", Date.now() + 500);
      expect(await raw.pexpiretime(keys.streamMeta("brief"))).toBeGreaterThan(before);
      await expect
        .poll(async () => raw.exists(keys.streamMeta("brief"), keys.streamChunks("brief")), { timeout: 20_000, interval: 100 })
        .toBe(0);
      expect((await streams.lookup("brief")).kind).toBe("notFound");
    } finally {
      raw.disconnect();
      await store.close();
    }
  });
});
