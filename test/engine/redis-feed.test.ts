import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { RedisEngine } from "../../src/engine/redis/redis-engine.ts";
import { RedisKeys } from "../../src/engine/redis/keys.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { never, until } from "../support/waits.ts";

beforeEach((ctx) => requireRedis(ctx));

const request = (content: string) => ({ model: "sim", messages: [{ role: "user" as const, content }] });

/** The Redis engine's change feed where it differs from the others (decision 036): trimming, and the cost of a delta. */
describe("the redis change feed", () => {
  let server: RedisServer | undefined;
  beforeAll(async () => {
    if (redisAvailable()) server = await startStandalone();
  });
  afterAll(async () => server?.stop());

  it("is trimmed to the retention, and a reader behind the trim is told of the gap; one past it is not", async () => {
    const prefix = `gap${process.pid}`;
    const engine = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix, retentionSeconds: 1 });
    try {
      await engine.create(request("first"));
      const [first] = (await engine.changes(undefined, 1)).changes;
      expect((await engine.changes(undefined, 10)).gap).toBe(false);
      // MINID ~ drops whole stream nodes (100 records each): more than one node, then records past the retention.
      for (let i = 0; i < 150; i++) await engine.create(request(`filler ${i}`));
      await until(
        async () => {
          await engine.create(request("later"));
          return (await engine.changes(first!.position, 1)).gap;
        },
        30_000,
        "the first records trimmed",
      );
      const page = await engine.changes(undefined, 1000);
      expect(page.gap).toBe(true);
      const newest = page.changes.at(-1)!;
      expect((await engine.changes(newest.position, 10)).gap).toBe(false);
    } finally {
      await engine.close();
    }
  });

  it("a delta writes nothing to the feed or the queue's slot", async () => {
    const prefix = `hot${process.pid}`;
    const engine = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix });
    const raw = new Redis(server!.url);
    try {
      const { id } = await engine.create(request("hot path"));
      const claim = await engine.claim("w", 60_000, never);
      await engine.append(id, claim!.fence, 2, [{ type: "started", attempt: claim!.fence, worker: "w", model: "sim" }]);
      const keys = new RedisKeys(prefix);
      const before = await raw.xlen(keys.changes);
      await engine.append(id, claim!.fence, 3, [
        { type: "delta", attempt: claim!.fence, text: "a" },
        { type: "delta", attempt: claim!.fence, text: "b" },
      ]);
      expect(await raw.xlen(keys.changes)).toBe(before);
      expect((await engine.changes(undefined, 100)).changes.map((c) => c.type)).toEqual(["created", "started"]);
    } finally {
      raw.disconnect();
      await engine.close();
    }
  });
});
