import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode, type LifelineNode } from "../../src/cli/node.ts";
import { RedisKeys } from "../../src/engine/redis/keys.ts";
import { RedisEngine } from "../../src/engine/redis/redis-engine.ts";
import { redisAvailable, startStandalone, type RedisServer } from "./redis-harness.ts";

/** What a test that plays the worker against a gateway on a real Redis holds. */
export interface GatewayOnRedis {
  readonly server: RedisServer;
  /** A gateway alone (no worker): the test writes the log as the workers of its attempts would. */
  readonly node: LifelineNode & { readonly url: string };
  /** The engine the test writes through, with real fenced appends. */
  readonly engine: RedisEngine;
  /** A plain connection, to do to the log what a failover does (drop entries). */
  readonly raw: Redis;
  readonly prefix: string;
  /**
   * Does to a log what a failover that lost its newest entries does: the entries after
   * `keepThrough` are gone and the log's head says so.
   */
  loseEntriesAfter(id: string, keepThrough: number): Promise<void>;
}

/**
 * For a describe block: a standalone Redis, a gateway on it, an engine and a raw connection beside
 * it, started before its tests and stopped after. `get()` is valid inside the tests (without
 * redis-server the tests skip, as `requireRedis` says).
 */
export function useGatewayOnRedis(prefixStem: string): { get(): GatewayOnRedis } {
  let held: GatewayOnRedis | undefined;
  const prefix = `${prefixStem}${process.pid}`;
  beforeAll(async () => {
    if (!redisAvailable()) return;
    const server = await startStandalone();
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: server.url,
      LIFELINE_REDIS_PREFIX: prefix,
      LIFELINE_PORT: "0",
      LIFELINE_LOG_LEVEL: "silent",
    };
    const node = await startNode(loadConfig(env, {}), { gateway: true, worker: false });
    const engine = new RedisEngine({ target: { mode: "standalone", url: server.url }, prefix });
    const raw = new Redis(server.url);
    const keys = new RedisKeys(prefix);
    const loseEntriesAfter = async (id: string, keepThrough: number): Promise<void> => {
      const last = Number(await raw.hget(keys.meta(id), "last"));
      const lost = Array.from({ length: last - keepThrough }, (_, i) => `${keepThrough + 1 + i}-0`);
      if (lost.length > 0) await raw.xdel(keys.log(id), ...lost);
      await raw.xsetid(keys.log(id), `${keepThrough}-0`);
      await raw.hset(keys.meta(id), "last", keepThrough);
    };
    held = { server, node: node as GatewayOnRedis["node"], engine, raw, prefix, loseEntriesAfter };
  });
  afterAll(async () => {
    held?.raw.disconnect();
    await held?.engine.close();
    await held?.node.stop();
    await held?.server.stop();
  });
  return {
    get(): GatewayOnRedis {
      if (!held) throw new Error("no gateway on Redis: redis-server is missing");
      return held;
    },
  };
}
