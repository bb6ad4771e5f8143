import { get, type IncomingMessage } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import type { Entry, EntryBody } from "../../src/core/entries.ts";
import { routes } from "../../src/core/routes.ts";
import { SseParser, WS_PATH, type SseMessage, type WsServerFrame } from "../../src/core/wire.ts";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import type { Engine } from "../../src/engine/port.ts";
import { Gateway } from "../../src/gateway/gateway.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { never, until } from "../support/waits.ts";

/*
 * Every follower at the end of a log waits in its generation's one shared tail, which reads each
 * new page once and hands the same encoded frames to all of them; a follower whose socket is full
 * leaves the tail and catches up on its own, holding up nobody.
 */

/** The engine as the gateway sees it, counting the reads it makes and the waits it has open. */
function counting(engine: Engine): { engine: Engine; reads: () => number; waiting: () => number } {
  let reads = 0;
  let waiting = 0;
  const counted = new Proxy(engine, {
    get(target, name, receiver) {
      if (name === "read") {
        return (...args: Parameters<Engine["read"]>) => {
          reads += 1;
          return target.read(...args);
        };
      }
      if (name === "wait") {
        return async (...args: Parameters<Engine["wait"]>) => {
          waiting += 1;
          try {
            await target.wait(...args);
          } finally {
            waiting -= 1;
          }
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { engine: counted, reads: () => reads, waiting: () => waiting };
}

/** An SSE reader over node:http that keeps every message, and can stop reading its socket for a while. */
class SseReader {
  readonly messages: SseMessage[] = [];
  readonly ended: Promise<void>;
  #res: IncomingMessage | undefined;

  constructor(baseUrl: string, id: string) {
    const parser = new SseParser((message) => this.messages.push(message));
    this.ended = new Promise((resolve, reject) => {
      get(new URL(routes.events(id), baseUrl), { headers: { accept: "text/event-stream" } }, (res) => {
        this.#res = res;
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => parser.push(chunk));
        res.on("end", resolve);
        res.on("error", reject);
      }).on("error", reject);
    });
  }

  entries(): Entry[] {
    return this.messages.map((m) => JSON.parse(m.data) as Entry);
  }

  has(offset: number): boolean {
    return this.messages.length >= offset;
  }

  pause(): void {
    this.#res?.pause();
  }

  resume(): void {
    this.#res?.resume();
  }

  close(): void {
    this.#res?.destroy();
  }
}

/** One WebSocket with a subscription per id, keeping each subscription's entries until its `end`. */
class WsReader {
  readonly entries = new Map<string, Entry[]>();
  readonly #ended = new Set<string>();
  readonly #ws: WebSocket;

  constructor(baseUrl: string, subs: number, id: string) {
    this.#ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}${WS_PATH}`);
    this.#ws.on("open", () => {
      for (let i = 0; i < subs; i++) {
        this.entries.set(`s${i}`, []);
        this.#ws.send(JSON.stringify({ type: "subscribe", sub: `s${i}`, generation: id }));
      }
    });
    this.#ws.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString("utf8")) as WsServerFrame;
      if (frame.type === "entry") this.entries.get(frame.sub)?.push(frame.entry as Entry);
      else if (frame.type === "end") this.#ended.add(frame.sub);
    });
  }

  has(offset: number): boolean {
    return this.entries.size > 0 && [...this.entries.values()].every((entries) => entries.length >= offset);
  }

  allEnded(): boolean {
    return this.#ended.size === this.entries.size;
  }

  close(): void {
    this.#ws.close();
  }
}

const request = { model: "sim", messages: [{ role: "user" as const, content: "shared" }] };
const usage = { promptTokens: 1, completionTokens: 1 };

describe("followers of one answer share one tail", () => {
  const memory = new MemoryEngine();
  const counted = counting(memory);
  const metrics = new Metrics();
  const gateway = new Gateway({
    engine: counted.engine,
    metrics,
    logger: createLogger("silent"),
    models: () => ["sim"],
    heartbeatMs: 15_000,
    maxBodyBytes: 1024 * 1024,
    web: false,
  });
  let url = "";
  const readers: Array<{ close(): void }> = [];
  beforeAll(async () => {
    url = await gateway.listen("127.0.0.1", 0);
  });
  afterEach(() => {
    for (const reader of readers.splice(0)) reader.close();
  });
  afterAll(async () => {
    await gateway.close();
    await memory.close();
  });

  async function openStreams(): Promise<number> {
    return (await metrics.openStreams.get()).values[0]?.value ?? 0;
  }

  /** A generation written by the test as a worker would, one entry at a time. */
  async function answer(): Promise<{ id: string; append: (body: EntryBody) => Promise<void> }> {
    const { id } = await memory.create(request);
    const claim = await memory.claim("w", 60_000, never);
    expect(claim?.id).toBe(id);
    let next = 2;
    const append = async (body: EntryBody): Promise<void> => {
      const result = await memory.append(id, claim!.fence, next, [body]);
      expect(result.kind).toBe("appended");
      next += 1;
    };
    await append({ type: "started", attempt: claim!.fence, worker: "w", model: "sim" });
    return { id, append };
  }

  it("forty SSE readers and ten WebSocket subscriptions wait on the engine once and read each new entry once, and all get the answer exactly", async () => {
    const { id, append } = await answer();
    const sse = Array.from({ length: 40 }, () => new SseReader(url, id));
    const ws = new WsReader(url, 10, id);
    readers.push(...sse, ws);
    await until(() => sse.every((r) => r.has(2)) && ws.has(2), 30_000, "every reader at the end of the log");
    expect(counted.waiting()).toBe(1);

    const readsBefore = counted.reads();
    let text = "";
    for (let i = 0; i < 10; i++) {
      await append({ type: "delta", attempt: 1, text: `token ${i} ` });
      text += `token ${i} `;
      await until(() => sse.every((r) => r.has(3 + i)) && ws.has(3 + i), 30_000, `every reader has entry ${3 + i}`);
    }
    // One read per new entry, whatever the number of readers (fifty readers reading alone: 500).
    expect(counted.reads() - readsBefore).toBeLessThanOrEqual(10);

    await append({ type: "completed", attempt: 1, finishReason: "stop", usage });
    await Promise.all(sse.map((r) => r.ended));
    await until(() => ws.allEnded(), 30_000, "every subscription ended");
    for (const reader of sse) expectExactAnswer(reader.entries(), text);
    for (const entries of ws.entries.values()) expect(entries).toEqual(sse[0]!.entries());
    // The tail stopped with its answer.
    expect(counted.waiting()).toBe(0);
  });

  it("a tail whose readers all left stops waiting", async () => {
    const { id } = await answer();
    const sse = Array.from({ length: 3 }, () => new SseReader(url, id));
    readers.push(...sse);
    await until(() => sse.every((r) => r.has(2)), 30_000, "every reader at the end of the log");
    expect(counted.waiting()).toBe(1);
    for (const reader of sse) reader.close();
    await until(() => counted.waiting() === 0, 30_000, "the tail stopped");
  });

  it("tails whose readers left stop however many tails wait beside them, and the readers still there get every entry", async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, () => answer()));
    const sse = answers.map(({ id }) => new SseReader(url, id));
    readers.push(...sse);
    await until(() => sse.every((r) => r.has(2)), 30_000, "every reader at the end of its log");
    expect(counted.waiting()).toBe(10);
    for (const reader of sse.slice(0, 5)) reader.close();
    await until(() => counted.waiting() === 5, 30_000, "the five tails nobody follows stopped");
    for (const [i, { append }] of answers.slice(5).entries()) await append({ type: "delta", attempt: 1, text: `still ${i}` });
    await until(() => sse.slice(5).every((r) => r.has(3)), 30_000, "the readers left got their entry");
    for (const reader of sse.slice(5)) reader.close();
    await until(() => counted.waiting() === 0, 30_000, "every tail stopped");
  });

  it("a tail whose reader left stops once the tails beside it stop waiting, though its own log stands still", async () => {
    const answers = await Promise.all(Array.from({ length: 3 }, () => answer()));
    const sse = answers.map(({ id }) => new SseReader(url, id));
    readers.push(...sse);
    await until(() => sse.every((r) => r.has(2)), 30_000, "every reader at the end of its log");
    expect(counted.waiting()).toBe(3);
    const open = await openStreams();
    sse[0]!.close();
    await until(async () => (await openStreams()) === open - 1, 30_000, "the gateway saw the first reader leave");
    // The two answers still followed end; the first one's log never grows again.
    for (const [i, { append }] of answers.slice(1).entries()) {
      await append({ type: "completed", attempt: 1, finishReason: "stop", usage });
      await sse[i + 1]!.ended;
    }
    await until(() => counted.waiting() === 0, 30_000, "the tail nobody follows stopped");
  });

  it("a reader that stops reading holds up nobody, and once it reads again gets the rest exactly", async () => {
    const { id, append } = await answer();
    const fast = new SseReader(url, id);
    const slow = new SseReader(url, id);
    readers.push(fast, slow);
    await until(() => fast.has(2) && slow.has(2), 30_000, "both readers at the end of the log");
    slow.pause();
    // Far more than loopback's socket buffers hold: the slow reader's socket fills.
    const chunk = "x".repeat(8 * 1024);
    let text = "";
    for (let i = 0; i < 2_000; i++) {
      await append({ type: "delta", attempt: 1, text: `${i}:${chunk}` });
      text += `${i}:${chunk}`;
    }
    await append({ type: "completed", attempt: 1, finishReason: "stop", usage });
    await fast.ended;
    expectExactAnswer(fast.entries(), text);

    // The slow reader left the tail when its socket filled: it catches up from the log.
    const readsBefore = counted.reads();
    slow.resume();
    await slow.ended;
    expectExactAnswer(slow.entries(), text);
    expect(counted.reads()).toBeGreaterThan(readsBefore);
  });
});
