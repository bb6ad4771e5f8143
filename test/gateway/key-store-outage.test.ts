import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { RedisKeyStore } from "../../src/engine/keys/redis.ts";
import { startInProcess } from "../support/in-process.ts";
import { requireRedis, redisAvailable, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { simRequest } from "../support/sim-answer.ts";
import { upgrade } from "../support/ws-upgrade.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;

/**
 * The key store shares the engine's Redis. When that Redis refuses to work (here: it is out of
 * memory, so it refuses every script), a request that needs the key store — an answer slot, a
 * token budget — is a retryable 503 `engine_unavailable`, as for the engine itself: not a 500.
 */
describe("a key store that does not answer", () => {
  const prefix = `kso${process.pid}`;
  let server: RedisServer;
  let raw: Redis;
  let node: Node;
  let unlimited: Node;
  let key: string;

  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startStandalone();
    raw = new Redis(server.url);
    const store = new RedisKeyStore({ target: { mode: "standalone", url: server.url }, prefix });
    key = (await new KeyRing(store).create("acme", ["generations:create", "generations:read"])).key;
    await store.close();
    node = await startInProcess({
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: server.url,
      LIFELINE_REDIS_PREFIX: prefix,
      LIFELINE_ANSWERS_PER_KEY: "4",
      LIFELINE_TOKENS_PER_MINUTE: "100000",
    });
    // No request limit: the first store call of a start is the key check, then the answer slot.
    unlimited = await startInProcess({
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: server.url,
      LIFELINE_REDIS_PREFIX: prefix,
      LIFELINE_REQUESTS_PER_MINUTE: "0",
      LIFELINE_ANSWERS_PER_KEY: "4",
    });
  });
  afterAll(async () => {
    await node?.stop();
    await unlimited?.stop();
    raw?.disconnect();
    await server?.stop();
  });

  const start = (url: string): Promise<Response> =>
    fetch(`${url}/v1/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify(simRequest("a start in a store that refuses", { max_tokens: 5 })),
    });
  const expectUnavailable = async (res: Response): Promise<void> => {
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("engine_unavailable");
  };

  it("answers 503 engine_unavailable when counting the request against the key's limit fails (Redis out of memory)", async (ctx) => {
    requireRedis(ctx);
    expect((await start(node.url)).status).toBe(201);
    await raw.config("SET", "maxmemory-policy", "noeviction");
    await raw.config("SET", "maxmemory", "1");
    try {
      await expectUnavailable(await start(node.url));
      expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    } finally {
      await raw.config("SET", "maxmemory", "0");
    }
    expect((await start(node.url)).status).toBe(201);
  });

  it("refuses a WebSocket upgrade with 503 engine_unavailable when counting it against the key's limit fails (Redis out of memory)", async (ctx) => {
    requireRedis(ctx);
    const url = `${node.url.replace("http", "ws")}/v1/ws`;
    const auth = { authorization: `Bearer ${key}` };
    const before = await upgrade(url, auth);
    expect(before).toBeInstanceOf(WebSocket);
    (before as WebSocket).close();
    await raw.config("SET", "maxmemory-policy", "noeviction");
    await raw.config("SET", "maxmemory", "1");
    try {
      expect(await upgrade(url, auth)).toMatchObject({ status: 503, body: { error: { code: "engine_unavailable" } } });
    } finally {
      await raw.config("SET", "maxmemory", "0");
    }
    const after = await upgrade(url, auth);
    expect(after).toBeInstanceOf(WebSocket);
    (after as WebSocket).close();
  });

  it("answers 503 engine_unavailable when checking the key fails (Redis refuses the key store's keys)", async (ctx) => {
    requireRedis(ctx);
    expect((await start(unlimited.url)).status).toBe(201);
    // The test keeps a user of its own; the gateways' (default) user may touch every key but the key store's.
    await raw.acl("SETUSER", "harness", "on", "nopass", "+@all", "~*", "&*");
    await raw.auth("harness", "any");
    const engineKeys = [
      `~${prefix}:{gen_*`,
      `~${prefix}:{${prefix}:q}*`,
      `~${prefix}:idem:*`,
      `~${prefix}:{limits}*`,
      `~${prefix}:{chat:*`,
    ];
    await raw.acl("SETUSER", "default", "resetkeys", ...engineKeys);
    try {
      await expectUnavailable(await start(unlimited.url));
      expect((await fetch(`${unlimited.url}/healthz`)).status).toBe(200);
    } finally {
      await raw.acl("SETUSER", "default", "~*");
    }
    expect((await start(unlimited.url)).status).toBe(201);
  });
});
