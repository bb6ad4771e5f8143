import { Chat } from "@ai-sdk/react";
import type { UIMessage } from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { readStream, simAnswerTo, textOf, transportFor } from "../support/ai-sdk-client.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

/** Long enough that the answer is still under way after a takeover and a cut (at 20 tokens a second). */
const FIELDS = { max_tokens: 160, seed: 7 } as const;

/**
 * The pace of a worker that takes an answer over: still mid-answer for seconds after the takeover
 * (the cut and the gateway's kill come at its first new text), without writing the rest at 20 a second.
 */
const TAKEOVER_TOKENS_PER_SECOND = "60";

const POST_MARKER = "POST /v1/ai-sdk/chat";

async function attemptsOf(url: string, id: string): Promise<number> {
  const view = (await (await fetch(`${url}/v1/generations/${id}`)).json()) as { attempts?: number };
  return view.attempts ?? 0;
}

/**
 * Kills the worker that writes `id` once its answer is under way, starts another, and resolves
 * once the other has taken the answer over (its log names a second attempt).
 */
async function killAndReplaceWorker(
  gateway: LifelineProcess,
  worker: LifelineProcess,
  id: string,
  startWorker: () => Promise<LifelineProcess>,
): Promise<void> {
  await worker.kill();
  await startWorker();
  await until(async () => (await attemptsOf(gateway.url, id)) >= 2, 30_000, "the takeover");
}

describe("the AI SDK door through a worker crash and a cut connection, with the official clients", () => {
  const start = useLifelineProcesses();
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A gateway and a worker as separate processes on one sqlite data directory, the gateway behind a TCP proxy. */
  async function fleet(): Promise<{
    gateway: LifelineProcess;
    worker: LifelineProcess;
    proxy: TcpProxy;
    url: string;
    startWorker: () => Promise<LifelineProcess>;
  }> {
    const data = tempDir();
    cleanups.push(() => data.remove());
    const env = { LIFELINE_DATA_DIR: data.path, LIFELINE_LEASE_MS: "1500", LIFELINE_SIM_TOKENS_PER_SECOND: "20" };
    const gateway = await start("gateway", env);
    const worker = await start("worker", { ...env, LIFELINE_WORKER_NAME: "first" });
    const proxy = await startTcpProxy(Number(new URL(gateway.url).port));
    cleanups.push(() => proxy.close());
    return {
      gateway,
      worker,
      proxy,
      url: `http://127.0.0.1:${proxy.port}`,
      startWorker: () =>
        start("worker", { ...env, LIFELINE_WORKER_NAME: "second", LIFELINE_SIM_TOKENS_PER_SECOND: TAKEOVER_TOKENS_PER_SECOND }),
    };
  }

  it("DefaultChatTransport: a SIGKILLed worker is replaced, the cut client reconnects with reconnectToStream, and the final text is the uninterrupted one", async () => {
    const { gateway, worker, proxy, url, startWorker } = await fleet();
    const transport = transportFor(url, FIELDS);
    const expected = simAnswerTo("survive it all", FIELDS);
    const stream = await transport.sendMessages({
      chatId: "crash-and-cut",
      messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: "survive it all" }] }],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });

    let id = "";
    let takeover: Promise<void> | undefined;
    let takenOver = false;
    let cut = 0;
    const first = await readStream(stream, (chunk, n) => {
      if (chunk.type === "start") id = chunk.messageId ?? "";
      // Mid-answer: the worker dies; the stream stays open and waits for the next one.
      if (chunk.type === "text-delta" && !takeover && n >= 6) {
        takeover = killAndReplaceWorker(gateway, worker, id, startWorker).then(() => void (takenOver = true));
      }
      // Once the other worker writes, the client's connection is cut mid-answer.
      if (chunk.type === "text-delta" && takenOver && cut === 0) cut = proxy.cut(POST_MARKER);
    });
    await takeover;
    expect(cut).toBe(1);
    expect(first.failure).toBeDefined(); // the cut, not an end
    const shown = textOf(first.message);
    expect(shown.length).toBeGreaterThan(0);
    expect(expected.startsWith(shown)).toBe(true);
    expect(shown.length).toBeLessThan(expected.length);

    // What useChat's resume does: GET <api>/<chatId>/stream, a full replay from start, then live.
    const resumed = await transport.reconnectToStream({ chatId: "crash-and-cut" });
    expect(resumed).not.toBeNull();
    const rest = await readStream(resumed!);
    expect(rest.failure).toBeUndefined();
    expect(rest.errors).toEqual([]);
    expect(rest.chunks[0]).toEqual({ type: "start", messageId: id });
    expect(rest.chunks.at(-1)).toMatchObject({ type: "finish" });
    expect(textOf(rest.message)).toBe(expected);
    expect(await attemptsOf(gateway.url, id)).toBe(2);
  });

  it("Chat from @ai-sdk/react: a SIGKILLed worker is replaced, the cut chat resumes with resumeStream, and the final text is the uninterrupted one", async () => {
    const { gateway, worker, proxy, url, startWorker } = await fleet();
    const expected = simAnswerTo("a react chat that survives", FIELDS);
    const chat = new Chat<UIMessage>({ id: "react-crash-and-cut", transport: transportFor(url, FIELDS) });
    const sent = chat.sendMessage({ text: "a react chat that survives" });

    await until(() => textOf(chat.messages[1]).length > 20, 30_000, "text before the crash");
    const id = chat.messages[1]!.id;
    expect(id).toMatch(/^gen_/);
    await killAndReplaceWorker(gateway, worker, id, startWorker);
    const afterTakeover = textOf(chat.messages[1]).length;
    await until(() => textOf(chat.messages[1]).length > afterTakeover, 30_000, "text from the other worker");
    expect(proxy.cut(POST_MARKER)).toBe(1);
    await sent;
    expect(chat.status).toBe("error"); // the cut, as the chat sees it
    const shown = textOf(chat.messages[1]);
    expect(expected.startsWith(shown)).toBe(true);
    expect(shown.length).toBeLessThan(expected.length);

    await chat.resumeStream();
    expect(chat.status).toBe("ready");
    expect(chat.error).toBeUndefined();
    expect(chat.messages.map((m) => [m.role, m.id])).toEqual([
      ["user", chat.messages[0]!.id],
      ["assistant", id],
    ]);
    expect(textOf(chat.messages[1])).toBe(expected);
    expect(await attemptsOf(gateway.url, id)).toBe(2);
  });
  it("a gateway SIGKILLed mid-answer: the chat resumes on another gateway, which finds the chat's answer in the engine", async () => {
    const data = tempDir();
    cleanups.push(() => data.remove());
    const env = { LIFELINE_DATA_DIR: data.path, LIFELINE_LEASE_MS: "1500", LIFELINE_SIM_TOKENS_PER_SECOND: "20" };
    const doomed = await start("gateway", env);
    const other = await start("gateway", env);
    // No takeover here: at 40 tokens a second the answer is still under way seconds after the kill below.
    await start("worker", { ...env, LIFELINE_SIM_TOKENS_PER_SECOND: "40" });
    const expected = simAnswerTo("gateways come and go", FIELDS);
    const chat = new Chat<UIMessage>({ id: "gateway-crash", transport: transportFor(doomed.url, FIELDS) });
    const sent = chat.sendMessage({ text: "gateways come and go" });
    await until(() => textOf(chat.messages[1]).length > 20, 30_000, "text before the crash");
    await doomed.kill();
    await sent;
    expect(chat.status).toBe("error");
    const shown = textOf(chat.messages[1]);
    expect(shown.length).toBeLessThan(expected.length);

    // The same chat, now talking to the other gateway (what a load balancer does after the crash).
    const moved = new Chat<UIMessage>({ id: "gateway-crash", messages: chat.messages, transport: transportFor(other.url, FIELDS) });
    await moved.resumeStream();
    expect(moved.status).toBe("ready");
    expect(moved.messages.map((m) => [m.role, m.id])).toEqual([
      ["user", chat.messages[0]!.id],
      ["assistant", chat.messages[1]!.id],
    ]);
    expect(textOf(moved.messages[1])).toBe(expected);
  });
});

describe("the AI SDK door in the distributed mode, on Redis", () => {
  beforeEach((ctx) => requireRedis(ctx));
  let redis: RedisServer | undefined;
  // Registered before the processes' hook, so it runs after it: the processes go first, then Redis.
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });
  const start = useLifelineProcesses();

  it("a SIGKILLed worker and a SIGKILLed gateway: Chat resumes on another gateway, which finds the chat in Redis, with the uninterrupted text", async () => {
    redis = await startStandalone();
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: redis.url,
      LIFELINE_LEASE_MS: "1500",
      LIFELINE_SIM_TOKENS_PER_SECOND: "20",
    };
    const doomed = await start("gateway", env);
    const other = await start("gateway", env);
    const worker = await start("worker", { ...env, LIFELINE_WORKER_NAME: "first" });
    const expected = simAnswerTo("a distributed chat", FIELDS);
    const chat = new Chat<UIMessage>({ id: "distributed", transport: transportFor(doomed.url, FIELDS) });
    const sent = chat.sendMessage({ text: "a distributed chat" });
    await until(() => textOf(chat.messages[1]).length > 20, 30_000, "text before the crashes");
    const id = chat.messages[1]!.id;
    await killAndReplaceWorker(other, worker, id, () =>
      start("worker", { ...env, LIFELINE_WORKER_NAME: "second", LIFELINE_SIM_TOKENS_PER_SECOND: TAKEOVER_TOKENS_PER_SECOND }),
    );
    await doomed.kill();
    await sent;
    expect(chat.status).toBe("error");
    expect(textOf(chat.messages[1]).length).toBeLessThan(expected.length);

    const moved = new Chat<UIMessage>({ id: "distributed", messages: chat.messages, transport: transportFor(other.url, FIELDS) });
    await moved.resumeStream();
    expect(moved.status).toBe("ready");
    expect(moved.messages.map((m) => m.id)).toEqual(chat.messages.map((m) => m.id));
    expect(textOf(moved.messages[1])).toBe(expected);
    expect(await attemptsOf(other.url, id)).toBe(2);
  });
});
