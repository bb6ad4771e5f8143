import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { RedisKeyStore } from "../../src/engine/keys/redis.ts";
import { startInProcess } from "../support/in-process.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { simRequest } from "../support/sim-answer.ts";
import { until } from "../support/waits.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;

beforeEach((ctx) => requireRedis(ctx));

describe("requests per minute per key, shared by two gateways on one Redis", () => {
  let server: RedisServer | undefined;
  const nodes: Node[] = [];
  const keys: Record<string, string> = {};
  let store: RedisKeyStore;
  const prefix = `lim${process.pid}`;

  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startStandalone();
    store = new RedisKeyStore({ target: { mode: "standalone", url: server.url }, prefix });
    const ring = new KeyRing(store);
    keys.busy = (await ring.create("acme", ["generations:create", "generations:read"])).key;
    keys.calm = (await ring.create("acme", ["generations:create", "generations:read"])).key;
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: server.url,
      LIFELINE_REDIS_PREFIX: prefix,
      LIFELINE_REQUESTS_PER_MINUTE: "5",
    };
    nodes.push(await startInProcess(env), await startInProcess(env));
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await store?.close();
    await server?.stop();
  });

  const create = (node: Node, key: string): Promise<Response> =>
    fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(simRequest("counted", { max_tokens: 2 })),
    });

  it("the sixth request of a minute, on whichever gateway, is refused with 429 rate_limited and Retry-After, and creates nothing", async () => {
    const [a, b] = nodes as [Node, Node];
    const answers = [];
    for (const node of [a, b, a, b, a]) answers.push(await create(node, keys.busy!));
    expect(answers.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    const refused = await create(b, keys.busy!);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("rate_limited");
    expect(body.error.message).not.toContain(keys.busy!.split("_")[2]!);
    // Another key of the same tenant has its own count, and health is never counted.
    expect((await create(a, keys.calm!)).status).toBe(201);
    expect((await fetch(`${a.url}/healthz`)).status).toBe(200);
    // The refused request created no generation: only the five and the calm key's one exist.
    const ids = new Set<string>();
    for (const r of answers) ids.add(((await r.json()) as { id: string }).id);
    expect(ids.size).toBe(5);
  });
});

describe("concurrent answers per key, counted by two gateways on one Redis", () => {
  let server: RedisServer | undefined;
  const nodes: Node[] = [];
  let key = "";
  let store: RedisKeyStore;
  const prefix = `ans${process.pid}`;

  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startStandalone();
    store = new RedisKeyStore({ target: { mode: "standalone", url: server.url }, prefix });
    key = (await new KeyRing(store).create("acme", ["generations:create", "generations:read"])).key;
    const env = { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: server.url, LIFELINE_REDIS_PREFIX: prefix, LIFELINE_ANSWERS_PER_KEY: "2" };
    nodes.push(await startInProcess(env), await startInProcess(env));
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await store?.close();
    await server?.stop();
  });

  const headers = () => ({ authorization: `Bearer ${key}`, "content-type": "application/json" });
  const start = (node: Node, content: string): Promise<Response> =>
    fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(simRequest(content, { max_tokens: 30_000 })),
    });

  it("a third long answer is refused with 429 too_many_answers on either gateway, and starts once one of the two has ended", async () => {
    const [a, b] = nodes as [Node, Node];
    const first = (await (await start(a, "long one")).json()) as { id: string };
    expect((await start(b, "long two")).status).toBe(201);
    const refused = await start(b, "one too many");
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("too_many_answers");
    // The same request with the same Idempotency-Key later names one generation: the refusal stored nothing.
    expect((await fetch(`${a.url}/v1/generations/${first.id}/cancel`, { method: "POST", headers: headers(), body: "{}" })).status).toBe(
      202,
    );
    const third = await start(a, "one too many");
    expect(third.status).toBe(201);
  });
});

describe("model tokens per minute per key, spent from one budget by two gateways on one Redis", () => {
  let server: RedisServer | undefined;
  const nodes: Node[] = [];
  let key = "";
  let store: RedisKeyStore;
  const prefix = `tpm${process.pid}`;

  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startStandalone();
    store = new RedisKeyStore({ target: { mode: "standalone", url: server.url }, prefix });
    key = (await new KeyRing(store).create("acme", ["generations:create"])).key;
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: server.url,
      LIFELINE_REDIS_PREFIX: prefix,
      LIFELINE_TOKENS_PER_MINUTE: "100",
    };
    nodes.push(await startInProcess(env), await startInProcess(env));
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await store?.close();
    await server?.stop();
  });

  const start = (node: Node, maxTokens: number | undefined): Promise<Response> =>
    fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "sim",
        messages: [{ role: "user", content: "budgeted" }],
        ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
      }),
    });

  it("each start spends its max_tokens; one that would pass the minute's budget is refused with 429 token_budget_spent until the minute ends", async () => {
    const [a, b] = nodes as [Node, Node];
    expect((await start(a, 40)).status).toBe(201);
    expect((await start(b, 40)).status).toBe(201);
    const refused = await start(a, 40);
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("token_budget_spent");
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // What is left fits: 20 more tokens make exactly 100. A request without max_tokens counts the ceiling.
    expect((await start(b, 20)).status).toBe(201);
    const unbounded = await start(b, undefined);
    expect(unbounded.status).toBe(429);
    expect(((await unbounded.json()) as { error: { message: string } }).error.message).toContain("32768");
  });
});

describe("open streams per key, counted across two gateways on one Redis", () => {
  let server: RedisServer | undefined;
  const nodes: Node[] = [];
  let key = "";
  let store: RedisKeyStore;
  const prefix = `str${process.pid}`;

  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startStandalone();
    store = new RedisKeyStore({ target: { mode: "standalone", url: server.url }, prefix });
    key = (await new KeyRing(store).create("acme", ["generations:create", "generations:read"])).key;
    const env = { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: server.url, LIFELINE_REDIS_PREFIX: prefix, LIFELINE_STREAMS_PER_KEY: "2" };
    nodes.push(await startInProcess(env), await startInProcess(env));
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await store?.close();
    await server?.stop();
  });

  it("a third open stream, SSE or WebSocket subscription, on either gateway, is refused with too_many_streams until one closes", async () => {
    const [a, b] = nodes as [Node, Node];
    const auth = { authorization: `Bearer ${key}` };
    const created = await fetch(`${a.url}/v1/generations`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify(simRequest("a long answer to follow", { max_tokens: 30_000 })),
    });
    const { id } = (await created.json()) as { id: string };
    const follows = [new AbortController(), new AbortController()];
    const first = await fetch(`${a.url}/v1/generations/${id}/events`, { headers: auth, signal: follows[0]!.signal });
    const second = await fetch(`${b.url}/v1/generations/${id}/events`, { headers: auth, signal: follows[1]!.signal });
    expect([first.status, second.status]).toEqual([200, 200]);
    const third = await fetch(`${b.url}/v1/generations/${id}/poll?wait_ms=0`, { headers: auth });
    expect(third.status).toBe(429);
    expect(((await third.json()) as { error: { code: string } }).error.code).toBe("too_many_streams");
    // A WebSocket subscription counts the same: an error frame names the limit.
    const ws = new WebSocket(`${a.url.replace("http", "ws")}/v1/ws`, { headers: auth });
    const frame = await new Promise<{ type: string; error?: { code: string } }>((resolve, reject) => {
      ws.on("error", reject);
      ws.on("open", () => ws.send(JSON.stringify({ type: "subscribe", sub: "s", generation: id })));
      ws.on("message", (data) => resolve(JSON.parse(String(data)) as { type: string; error?: { code: string } }));
    });
    ws.close();
    expect(frame).toMatchObject({ type: "error", error: { code: "too_many_streams" } });
    // One stream closes: its slot frees, and a new read goes through.
    follows[0]!.abort();
    await until(async () => (await fetch(`${b.url}/v1/generations/${id}/poll?wait_ms=0`, { headers: auth })).status === 200, 10_000);
    follows[1]!.abort();
  });
});
