import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { idleWorkerThenWork, outputShows } from "./support/idle-processes.ts";

describe("on Redis, processes run until a signal and stop when the engine is gone for good", () => {
  let server: RedisServer | undefined;
  const start = useLifelineProcesses();
  beforeAll(async () => {
    if (redisAvailable()) server = await startStandalone();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("a Redis worker started first waits, takes an answer from a separately started gateway, finishes it, and exits 0 on SIGTERM", async (ctx) => {
    requireRedis(ctx);
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: server!.url,
      LIFELINE_REDIS_PREFIX: `idle${process.pid}`,
      LIFELINE_SIM_TOKENS_PER_SECOND: "200",
    };
    await idleWorkerThenWork(env, start);
  });

  it("a worker whose Redis goes away for longer than its retry budget exits 1 and says why", async (ctx) => {
    requireRedis(ctx);
    const doomed = await startStandalone();
    try {
      const worker = await start("worker", { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: doomed.url, LIFELINE_ENGINE_RETRY_MS: "2000" });
      await doomed.kill();
      const code = await new Promise<number | null>((resolve) => worker.child.once("exit", resolve));
      expect(code).toBe(1);
      expect(worker.output()).toMatch(/lifeline: worker stops: the redis engine has not answered for 2000 ms/);
    } finally {
      await doomed.stop();
    }
  });

  it("a SIGTERM while Redis is down ends the worker with 0, without waiting out the retry budget", async (ctx) => {
    requireRedis(ctx);
    const doomed = await startStandalone();
    try {
      const worker = await start("worker", {
        LIFELINE_ENGINE: "redis",
        LIFELINE_REDIS_URL: doomed.url,
        LIFELINE_ENGINE_RETRY_MS: "600000",
        LIFELINE_LOG_LEVEL: "info",
      });
      await doomed.kill();
      await outputShows(worker, /"msg":"the engine does not answer"/);
      // Nothing can be handed back to an engine that is gone: the stop closes it first. A stop that
      // waited for the Redis client to give up its reconnects (about 40 s) would outlast this test.
      expect(await worker.terminate()).toBe(0);
    } finally {
      await doomed.stop();
    }
  }, 25_000);
});
