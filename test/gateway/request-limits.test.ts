import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { RedisKeyStore } from "../../src/engine/keys/redis.ts";
import { startInProcess } from "../support/in-process.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { simRequest } from "../support/sim-answer.ts";
import { minuteWithTimeLeft, until } from "../support/waits.ts";
import { subscribeToEnd, upgrade, type RefusedUpgrade } from "../support/ws-upgrade.ts";
import { parseApiKey } from "../../src/core/api-keys.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;

beforeEach((ctx) => requireRedis(ctx));

let server: RedisServer | undefined;
beforeAll(async () => {
  if (redisAvailable()) server = await startStandalone();
});
afterAll(async () => server?.stop());

/**
 * For a describe block: two gateways (each with a worker) on the file's Redis under a prefix of
 * their own, with `env` for their limits, and API keys of tenant acme made before they start.
 */
function useTwoGateways(prefixStem: string, env: Record<string, string>, keyNames: readonly string[]) {
  const nodes: Node[] = [];
  const keys: Record<string, string> = {};
  let store: RedisKeyStore | undefined;
  beforeAll(async () => {
    if (!server) return;
    const prefix = `${prefixStem}${process.pid}`;
    store = new RedisKeyStore({ target: { mode: "standalone", url: server.url }, prefix });
    const ring = new KeyRing(store);
    for (const name of keyNames) keys[name] = (await ring.create("acme", ["generations:create", "generations:read"])).key;
    const all = { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: server.url, LIFELINE_REDIS_PREFIX: prefix, ...env };
    nodes.push(await startInProcess(all), await startInProcess(all));
  });
  afterAll(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    await store?.close();
  });
  return { gateways: (): [Node, Node] => nodes as [Node, Node], key: (name: string): string => keys[name]! };
}

describe("requests per minute per key, shared by two gateways on one Redis", () => {
  const fleet = useTwoGateways("lim", { LIFELINE_REQUESTS_PER_MINUTE: "5" }, ["busy", "calm", "socket", "reader"]);

  const create = (node: Node, key: string): Promise<Response> =>
    fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(simRequest("counted", { max_tokens: 2 })),
    });

  it("the sixth request of a minute, on whichever gateway, is refused with 429 rate_limited and Retry-After, and creates nothing", async () => {
    const [a, b] = fleet.gateways();
    const answers = [];
    for (const node of [a, b, a, b, a]) answers.push(await create(node, fleet.key("busy")));
    expect(answers.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    const refused = await create(b, fleet.key("busy"));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("rate_limited");
    expect(body.error.message).not.toContain(parseApiKey(fleet.key("busy"))!.secret);
    // Another key of the same tenant has its own count, and health is never counted.
    expect((await create(a, fleet.key("calm"))).status).toBe(201);
    expect((await fetch(`${a.url}/healthz`)).status).toBe(200);
    // The refused request created no generation: only the five and the calm key's one exist.
    const ids = new Set<string>();
    for (const r of answers) ids.add(((await r.json()) as { id: string }).id);
    expect(ids.size).toBe(5);
  });

  const wsUrl = (node: Node): string => `${node.url.replace("http", "ws")}/v1/ws`;
  const opened = (answer: WebSocket | RefusedUpgrade): WebSocket => {
    if (answer instanceof WebSocket) return answer;
    throw new Error(`upgrade refused with ${answer.status} ${answer.body.error?.code}`);
  };
  const refused = (answer: WebSocket | RefusedUpgrade): RefusedUpgrade => {
    if (!(answer instanceof WebSocket)) return answer;
    answer.close();
    throw new Error("the upgrade was not refused");
  };

  it("a WebSocket upgrade and each subscribe frame count as requests of the key on whichever gateway: past the limit a subscribe gets an error frame rate_limited and an upgrade 429 with Retry-After", async () => {
    const [a, b] = fleet.gateways();
    const key = fleet.key("socket");
    const auth = { authorization: `Bearer ${key}` };
    const created = await create(a, key); // 1
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const ws = opened(await upgrade(wsUrl(b), auth)); // 2
    try {
      expect(await subscribeToEnd(ws, { sub: "first", generation: id })).toMatchObject({ type: "end" }); // 3
      opened(await upgrade(wsUrl(a), auth)).close(); // 4
      expect(await subscribeToEnd(ws, { sub: "second", generation: id })).toMatchObject({ type: "end" }); // 5
      // The sixth request of the minute is a subscribe frame: refused, and the connection stays open.
      expect(await subscribeToEnd(ws, { sub: "third", generation: id })).toMatchObject({
        type: "error",
        error: { code: "rate_limited" },
      });
      expect(ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      ws.close();
    }
    const answer = refused(await upgrade(wsUrl(a), auth));
    expect(answer.status).toBe(429);
    const retryAfter = Number(answer.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(answer.body.error?.code).toBe("rate_limited");
    expect(answer.body.error?.message).not.toContain(parseApiKey(key)!.secret);
    // The same counter as the key's HTTP requests: they are refused too.
    expect((await create(b, key)).status).toBe(429);
  });

  it("on a connection opened without credentials each subscribe frame counts against its read token's generation, as an HTTP request or an upgrade with that token does", async () => {
    const [a, b] = fleet.gateways();
    const created = await create(a, fleet.key("reader"));
    const { id, token } = (await created.json()) as { id: string; token: string };
    const read = (node: Node): Promise<Response> =>
      fetch(`${node.url}/v1/generations/${id}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await read(a)).status).toBe(200); // 1
    expect((await read(b)).status).toBe(200); // 2
    opened(await upgrade(`${wsUrl(b)}?token=${token}`)).close(); // 3
    // An upgrade without credentials counts for nobody; each subscription on it for its token's generation.
    const ws = opened(await upgrade(wsUrl(a)));
    try {
      expect(await subscribeToEnd(ws, { sub: "one", generation: id, token })).toMatchObject({ type: "end" }); // 4
      expect(await subscribeToEnd(ws, { sub: "two", generation: id, token })).toMatchObject({ type: "end" }); // 5
      expect(await subscribeToEnd(ws, { sub: "three", generation: id, token })).toMatchObject({
        type: "error",
        error: { code: "rate_limited" },
      });
    } finally {
      ws.close();
    }
    const answer = refused(await upgrade(`${wsUrl(a)}?token=${token}`));
    expect(answer.status).toBe(429);
    expect(answer.body.error?.code).toBe("rate_limited");
    expect((await read(b)).status).toBe(429);
    // The key that started the answer has its own count: one request so far.
    expect((await create(b, fleet.key("reader"))).status).toBe(201);
  });
});

describe("concurrent answers per key, counted by two gateways on one Redis", () => {
  const fleet = useTwoGateways("ans", { LIFELINE_ANSWERS_PER_KEY: "2" }, ["acme"]);

  const headers = () => ({ authorization: `Bearer ${fleet.key("acme")}`, "content-type": "application/json" });
  const start = (node: Node, content: string): Promise<Response> =>
    fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(simRequest(content, { max_tokens: 30_000 })),
    });

  it("a third long answer is refused with 429 too_many_answers on either gateway, and starts once one of the two has ended", async () => {
    const [a, b] = fleet.gateways();
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

describe("concurrent answers per key, started all at once on two gateways on one Redis", () => {
  const fleet = useTwoGateways("race", { LIFELINE_ANSWERS_PER_KEY: "8" }, ["acme"]);

  const start = (node: Node, content: string): Promise<Response> =>
    fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${fleet.key("acme")}`, "content-type": "application/json" },
      body: JSON.stringify(simRequest(content, { max_tokens: 30_000 })),
    });

  it("every answer admitted at once keeps its slot, so a ninth is refused while the eight run", async () => {
    const gateways = fleet.gateways();
    const started = await Promise.all(Array.from({ length: 8 }, (_, i) => start(gateways[i % 2]!, `long ${i}`)));
    expect(started.map((res) => res.status)).toEqual(Array.from({ length: 8 }, () => 201));
    const refused = await start(gateways[0], "one too many");
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("too_many_answers");
  });
});

describe("model tokens per minute per key, spent from one budget by two gateways on one Redis", () => {
  const fleet = useTwoGateways("tpm", { LIFELINE_TOKENS_PER_MINUTE: "100" }, ["acme"]);

  const start = (node: Node, maxTokens: number | undefined): Promise<Response> =>
    fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${fleet.key("acme")}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "sim",
        messages: [{ role: "user", content: "budgeted" }],
        ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
      }),
    });

  it("each start spends its max_tokens; one that would pass the minute's budget is refused with 429 token_budget_spent until the minute ends", async () => {
    const [a, b] = fleet.gateways();
    await minuteWithTimeLeft(20_000); // the budget of one minute, spent and refused within it
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

describe("model tokens per minute per key, with Idempotency-Key retries and refused starts", () => {
  const fleet = useTwoGateways("tpmk", { LIFELINE_TOKENS_PER_MINUTE: "100000", LIFELINE_ANSWERS_PER_KEY: "2" }, ["acme"]);

  const headers = (idempotencyKey?: string) => ({
    authorization: `Bearer ${fleet.key("acme")}`,
    "content-type": "application/json",
    ...(idempotencyKey === undefined ? {} : { "idempotency-key": idempotencyKey }),
  });
  const start = (node: Node, content: string, idempotencyKey?: string): Promise<Response> =>
    fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: headers(idempotencyKey),
      body: JSON.stringify(simRequest(content, { max_tokens: 30_000 })),
    });
  const codeOf = async (res: Response): Promise<string> => ((await res.json()) as { error: { code: string } }).error.code;

  it("a retry that replays its generation, a reused Idempotency-Key and a start refused for its answers spend nothing", async () => {
    const [a, b] = fleet.gateways();
    await minuteWithTimeLeft(20_000); // the budget of one minute, spent and refused within it
    const first = await start(a, "the first", "retried");
    expect(first.status).toBe(201);
    const replay = await start(b, "the first", "retried");
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    const reused = await start(a, "another body", "retried");
    expect(await codeOf(reused)).toBe("idempotency_key_reused");
    expect((await start(b, "the second")).status).toBe(201);
    // Two answers that have not ended: a third is refused for that.
    expect(await codeOf(await start(a, "one too many"))).toBe("too_many_answers");
    // But a retry of a start that has its answer gets that answer, at the limit too, and spends nothing.
    const { id } = (await first.json()) as { id: string };
    const atLimit = await start(b, "the first", "retried");
    expect(atLimit.status).toBe(201);
    expect(atLimit.headers.get("idempotent-replayed")).toBe("true");
    expect(((await atLimit.json()) as { id: string }).id).toBe(id);
    expect(await codeOf(await start(a, "another body", "retried"))).toBe("idempotency_key_reused");
    expect(await codeOf(await start(a, "a new one", "new-key"))).toBe("too_many_answers");
    // Spent: the two generations' 60,000. Once one ends, 30,000 more fit in the 100,000.
    expect((await fetch(`${a.url}/v1/generations/${id}/cancel`, { method: "POST", headers: headers(), body: "{}" })).status).toBe(202);
    expect((await start(b, "the third", "third")).status).toBe(201);
    // 90,000 of the minute's 100,000 spent: a new start is refused for its tokens, a retry of one
    // that went through gets its answer.
    expect(await codeOf(await start(a, "the fourth"))).toBe("token_budget_spent");
    const retried = await start(a, "the third", "third");
    expect(retried.status).toBe(201);
    expect(retried.headers.get("idempotent-replayed")).toBe("true");
  });
});

describe("open streams per key, counted across two gateways on one Redis", () => {
  const fleet = useTwoGateways("str", { LIFELINE_STREAMS_PER_KEY: "2" }, ["acme", "replayer"]);

  it("a third open stream, SSE or WebSocket subscription, on either gateway, is refused with too_many_streams until one closes", async () => {
    const [a, b] = fleet.gateways();
    const auth = { authorization: `Bearer ${fleet.key("acme")}` };
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

  it("an OpenAI streaming request that replays a running answer by its Idempotency-Key is an open stream too", async () => {
    const [a, b] = fleet.gateways();
    const ask = (node: Node, signal: AbortSignal): Promise<Response> =>
      fetch(`${node.url}/v1/chat/completions`, {
        method: "POST",
        signal,
        headers: { authorization: `Bearer ${fleet.key("replayer")}`, "content-type": "application/json", "idempotency-key": "followed" },
        body: JSON.stringify({ ...simRequest("a long answer replayed", { max_tokens: 30_000 }), stream: true }),
      });
    const follows = [new AbortController(), new AbortController(), new AbortController()];
    try {
      const first = await ask(a, follows[0]!.signal);
      const second = await ask(b, follows[1]!.signal);
      expect([first.status, second.status]).toEqual([200, 200]);
      expect(second.headers.get("idempotent-replayed")).toBe("true");
      const third = await ask(a, follows[2]!.signal);
      expect(third.status).toBe(429);
      expect(((await third.json()) as { error: { code: string } }).error.code).toBe("too_many_streams");
    } finally {
      for (const follow of follows) follow.abort();
    }
  });
});
