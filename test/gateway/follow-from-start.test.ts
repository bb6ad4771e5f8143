import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode, type LifelineNode } from "../../src/cli/node.ts";
import type { Entry } from "../../src/core/entries.ts";
import { WS_PATH, type PollResponse, type WsServerFrame } from "../../src/core/wire.ts";
import { RedisEngine } from "../../src/engine/redis/redis-engine.ts";
import { startInProcess } from "../support/in-process.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { simRequest, simText } from "../support/sim-answer.ts";
import { until } from "../support/waits.ts";

/*
 * Every door follows the log through one shared follower: from the start (`from=0`, the cursor a
 * `reset` hands out) each of SSE, WebSocket and long-poll gives the whole answer, on every engine,
 * and a long-poll that will not wait (`wait_ms=0`) still gets what the log already holds.
 */

const ask = (content: string, max_tokens = 30) => simRequest(content, { max_tokens });
const expected = (content: string, max_tokens = 30): string => simText(ask(content, max_tokens));
const never = new AbortController().signal;

async function poll(base: string, id: string, query: Record<string, string>): Promise<PollResponse> {
  const url = new URL(`/v1/generations/${id}/poll`, base);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return (await res.json()) as PollResponse;
}

function pollEntries(body: PollResponse): Entry[] {
  return body.events.flatMap((e) => (e.type === "entry" ? [e.entry as Entry] : []));
}

/** Subscribes over a real WebSocket with `cursor` and collects the log until `end`. */
async function followOverWebSocket(base: string, id: string, cursor: string): Promise<Entry[]> {
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}${WS_PATH}`);
  const entries: Entry[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once("error", reject);
      ws.once("close", () => reject(new Error("closed before the end of the log")));
      ws.on("message", (data: Buffer) => {
        const frame = JSON.parse(data.toString("utf8")) as WsServerFrame;
        if (frame.type === "entry") entries.push(frame.entry as Entry);
        else if (frame.type === "end") resolve();
        else if (frame.type === "error") reject(new Error(`${frame.error.code}: ${frame.error.message}`));
      });
      ws.once("open", () => ws.send(JSON.stringify({ type: "subscribe", sub: "s", generation: id, cursor })));
    });
  } finally {
    ws.close();
  }
  return entries;
}

interface EngineUnderTest {
  readonly url: string;
  /** Makes the engine answer slower than a poll that will not wait (Redis only), for the next request. */
  readonly slowDown?: () => Promise<void>;
}

function fromTheStart(name: string, open: () => EngineUnderTest) {
  describe(`following from the start on the ${name} engine`, () => {
    it("`from=0` gives a finished answer from its first entry over SSE, WebSocket and long-poll alike", async () => {
      const { url } = open();
      const id = await startGeneration(url, ask(`from zero on ${name}`));
      const sse = entriesOf((await readEvents(url, id, { from: "0" })).messages);
      expectExactAnswer(sse, expected(`from zero on ${name}`));
      expect(await followOverWebSocket(url, id, "0")).toEqual(sse);
      const polled = await poll(url, id, { from: "0" });
      expect(polled.ended).toBe(true);
      expect(pollEntries(polled)).toEqual(sse);
    });

    it("a long-poll with wait_ms=0 still gets everything the log holds after its cursor, every time", async () => {
      const { url, slowDown } = open();
      const id = await startGeneration(url, ask(`no wait on ${name}`));
      const whole = entriesOf((await readEvents(url, id)).messages);
      expectExactAnswer(whole, expected(`no wait on ${name}`));
      for (let round = 0; round < 5; round++) {
        await slowDown?.();
        const fromStart = await poll(url, id, { from: "0", wait_ms: "0" });
        expect(fromStart.ended).toBe(true);
        expect(pollEntries(fromStart)).toEqual(whole);
        await slowDown?.();
        const fromMiddle = await poll(url, id, { from: String(whole.length - 3), wait_ms: "0" });
        expect(pollEntries(fromMiddle)).toEqual(whole.slice(-3));
      }
    });

    it("a long-poll that meets a reset gets the log from offset 1 in the same answer, even with wait_ms=0", async () => {
      const { url, slowDown } = open();
      const id = await startGeneration(url, ask(`reset on ${name}`));
      const whole = entriesOf((await readEvents(url, id)).messages);
      await slowDown?.();
      // A cursor past the end of the log cannot be vouched for: reset, then the whole log.
      const body = await poll(url, id, { from: "9999", wait_ms: "0" });
      expect(body.events[0]).toEqual({ type: "reset" });
      expect(pollEntries(body)).toEqual(whole);
      expect(body.ended).toBe(true);
      // The cursor a reset hands out ("0") leads back to the whole log, not to an empty answer.
      await slowDown?.();
      expect(pollEntries(await poll(url, id, { from: "0", wait_ms: "0" }))).toEqual(whole);
    });
  });
}

let memory: LifelineNode & { url: string };
let sqlite: LifelineNode & { url: string };
const sqliteDir = tempDir("lifeline-follow-");
beforeAll(async () => {
  [memory, sqlite] = await Promise.all([
    startInProcess(),
    startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: sqliteDir.path }),
  ]);
});
afterAll(async () => {
  await Promise.all([memory?.stop(), sqlite?.stop()]);
  sqliteDir.remove();
});

fromTheStart("memory", () => ({ url: memory.url }));
fromTheStart("sqlite", () => ({ url: sqlite.url }));

describe("on Redis", () => {
  beforeEach((ctx) => requireRedis(ctx));
  let server: RedisServer | undefined;
  let node: (LifelineNode & { url: string }) | undefined;
  let raw: Redis | undefined;
  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startStandalone();
    node = await startInProcess({ LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: server.url, LIFELINE_REDIS_PREFIX: `ffs${process.pid}` });
    raw = new Redis(server.url);
  });
  afterAll(async () => {
    raw?.disconnect();
    await node?.stop();
    await server?.stop();
  });

  // Redis answers over the network: held for a moment, the engine is always slower than a poll's
  // zero wait, which is exactly when a follow that gives up before its first read returns nothing.
  fromTheStart("redis", () => ({ url: node!.url, slowDown: async () => void (await raw!.call("CLIENT", "PAUSE", "100", "ALL")) }));

  it("SSE follows from the start wait at the end of the log without asking its head, and each gets the next entry", async () => {
    // A gateway without a worker: the answers stay at `created` until the test appends.
    const prefix = `ffq${process.pid}`;
    const env = { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: server!.url, LIFELINE_REDIS_PREFIX: prefix, LIFELINE_PORT: "0" };
    const gateway = await startNode(loadConfig({ ...env, LIFELINE_LOG_LEVEL: "silent" }, {}), { gateway: true, worker: false });
    const engine = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix });
    const calls = async (command: string): Promise<number> =>
      Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(await raw!.info("commandstats"))?.[1] ?? 0);
    const FOLLOWS = 20;
    try {
      const url = gateway.url!;
      const ids: string[] = [];
      for (let i = 0; i < FOLLOWS; i++)
        ids.push((await engine.create({ model: "sim", messages: [{ role: "user", content: `quiet ${i}` }] })).id);
      // The gateway's subscriber is trusted: its first probe came back.
      await until(() => (gateway.engine as RedisEngine).subscriptionTrusted, 30_000, "a probe through the gateway's subscriber");
      const heads = await calls("hmget");
      const follows = ids.map((id) => readEvents(url, id, { cutAfter: 2 }));
      // Every follow is parked once the gateway listens on its log's channel.
      for (const id of ids) {
        for (;;) {
          const [, listeners] = (await raw!.call("PUBSUB", "SHARDNUMSUB", `${prefix}:{${id}}:n`)) as [string, number];
          if (listeners > 0) break;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      // One head per follow before (decision 045): a few may come from the gateway's read models.
      expect((await calls("hmget")) - heads).toBeLessThanOrEqual(2);

      for (let i = 0; i < ids.length; i++) {
        const claim = await engine.claim("w", 60_000, never);
        await engine.append(claim!.id, claim!.fence, 2, [{ type: "started", attempt: claim!.fence, worker: "w", model: "sim" }]);
      }
      for (const read of follows) {
        const entries = entriesOf((await read).messages);
        expect(entries.map((e) => [e.offset, e.type])).toEqual([
          [1, "created"],
          [2, "started"],
        ]);
      }
    } finally {
      await engine.close();
      await gateway.stop();
    }
  });

  it("a long-poll held at a cursor whose entry a failover replaces answers reset and the log from offset 1", async () => {
    // A gateway without a worker; the test writes the log as two attempts would.
    const prefix = `ffr${process.pid}`;
    const env = { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: server!.url, LIFELINE_REDIS_PREFIX: prefix, LIFELINE_PORT: "0" };
    const gateway = await startNode(loadConfig({ ...env, LIFELINE_LOG_LEVEL: "silent" }, {}), { gateway: true, worker: false });
    const engine = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix });
    try {
      const url = gateway.url!;
      const { id } = await engine.create({ model: "sim", messages: [{ role: "user", content: "held through a failover" }] });
      const first = await engine.claim("w1", 60_000, never);
      await engine.append(id, 1, 2, [
        { type: "started", attempt: 1, worker: "w1", model: "sim" },
        { type: "delta", attempt: 1, text: "Hello" },
        { type: "delta", attempt: 1, text: " old" },
      ]);

      const held = poll(url, id, { from: "1:4", wait_ms: "30000" });
      // The poll is parked once the gateway listens on the log's channel.
      const channel = `${prefix}:{${id}}:n`;
      for (;;) {
        const [, listeners] = (await raw!.call("PUBSUB", "SHARDNUMSUB", channel)) as [string, number];
        if (listeners > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }

      // What a failover that lost entry 4 does; then another attempt writes there.
      await raw!.xdel(`${prefix}:{${id}}:log`, "4-0");
      await raw!.xsetid(`${prefix}:{${id}}:log`, "3-0");
      await raw!.hset(`${prefix}:{${id}}:meta`, "last", 3);
      await engine.release(id, first!.fence);
      const second = await engine.claim("w2", 60_000, never);
      await engine.append(id, second!.fence, 4, [
        { type: "started", attempt: second!.fence, worker: "w2", model: "sim" },
        { type: "delta", attempt: second!.fence, text: " new" },
        { type: "completed", attempt: second!.fence, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 2 } },
      ]);

      const body = await held;
      expect(body.events.map((e) => (e.type === "entry" ? e.cursor : "reset"))).toEqual([
        "reset",
        "0:1",
        "1:2",
        "1:3",
        "2:4",
        "2:5",
        "2:6",
      ]);
      expect(body.ended).toBe(true);
      expect(body.cursor).toBe("2:6");
      const text = pollEntries(body)
        .map((e) => (e.type === "delta" ? e.text : ""))
        .join("");
      expect(text).toBe("Hello new");
    } finally {
      await engine.close();
      await gateway.stop();
    }
  });
});
