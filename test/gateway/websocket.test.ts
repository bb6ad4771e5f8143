import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket, type ClientOptions } from "ws";
import type { Entry } from "../../src/core/entries.ts";
import { WS_CLOSE_SLOW_CONSUMER, WS_PATH, type WsServerFrame } from "../../src/core/wire.ts";
import { startInProcess } from "../support/in-process.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { readEvents, startGeneration } from "../support/sse-client.ts";
import { sleep, until } from "../support/waits.ts";
import { upgrade } from "../support/ws-upgrade.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;
type EntryFrame = Extract<WsServerFrame, { type: "entry" }>;
type ErrorFrame = Extract<WsServerFrame, { type: "error" }>;

const ask = (content: string, max_tokens = 40) => simRequest(content, { max_tokens });
const expected = (content: string, max_tokens = 40): string => simText(ask(content, max_tokens));
const subOf = (frame: WsServerFrame): string | undefined => ("sub" in frame ? frame.sub : undefined);

/** A real `ws` client that records every frame and lets a test wait for the ones it expects. */
class WsClient {
  readonly frames: WsServerFrame[] = [];
  readonly protocolPings: number[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #read = 0;
  #wake: (() => void) | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      expect(isBinary).toBe(false);
      this.frames.push(JSON.parse(data.toString("utf8")) as WsServerFrame);
      this.#wake?.();
    });
    ws.on("ping", () => this.protocolPings.push(Date.now()));
    ws.on("error", () => undefined);
    this.closed = new Promise((resolve) =>
      ws.on("close", (code: number, reason: Buffer) => {
        resolve({ code, reason: reason.toString() });
        this.#wake?.();
      }),
    );
  }

  static open(baseUrl: string, options: ClientOptions = {}): Promise<WsClient> {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}${WS_PATH}`, options);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(new WsClient(ws)));
      ws.once("error", reject);
    });
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** The next frame (after the last one `next` returned) that matches. */
  async next<F extends WsServerFrame>(match: (frame: WsServerFrame) => frame is F, timeoutMs?: number): Promise<F>;
  async next(match: (frame: WsServerFrame) => boolean, timeoutMs?: number): Promise<WsServerFrame>;
  async next(match: (frame: WsServerFrame) => boolean, timeoutMs = 10_000): Promise<WsServerFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#read < this.frames.length) {
        const frame = this.frames[this.#read++];
        if (frame && match(frame)) return frame;
      }
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error("closed while waiting for a frame");
      if (Date.now() > deadline) throw new Error(`no matching frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Waits for `end` (or `error`) of `sub`. */
  async finished(sub: string, timeoutMs?: number): Promise<WsServerFrame> {
    return this.next((f) => (f.type === "end" || f.type === "error") && f.sub === sub, timeoutMs);
  }

  nextError(): Promise<ErrorFrame> {
    return this.next((f): f is ErrorFrame => f.type === "error");
  }

  entryFrames(sub: string): EntryFrame[] {
    return this.frames.filter((f): f is EntryFrame => f.type === "entry" && f.sub === sub);
  }

  entries(sub: string): Entry[] {
    return this.entryFrames(sub).map((f) => f.entry as Entry);
  }
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1]);
}

describe("WebSocket endpoint", () => {
  let node: Node;
  let url: string;
  beforeAll(async () => {
    // A heartbeat of a second: a connection that answered a ping is cut only if the pong is not read
    // by the next tick, and a loaded machine can hold this one process's loop for 100 ms.
    node = await startInProcess({ LIFELINE_HEARTBEAT_MS: "1000" });
    url = node.url;
  });
  afterAll(async () => {
    await node.stop();
  });

  it("two subscriptions on one connection both end with exactly the sim's text", async () => {
    const [a, b] = await Promise.all([startGeneration(url, ask("first")), startGeneration(url, ask("second", 60))]);
    const client = await WsClient.open(url);
    client.send({ type: "subscribe", sub: "a", generation: a });
    client.send({ type: "subscribe", sub: "b", generation: b });
    expect(await client.finished("a")).toEqual({ type: "end", sub: "a" });
    expect(await client.finished("b")).toEqual({ type: "end", sub: "b" });
    expectExactAnswer(client.entries("a"), expected("first"));
    expectExactAnswer(client.entries("b"), expected("second", 60));
    for (const frame of [...client.entryFrames("a"), ...client.entryFrames("b")]) {
      expect(frame.cursor).toBe(String((frame.entry as Entry).offset));
    }
    // The ids are free again once their subscriptions ended.
    client.send({ type: "subscribe", sub: "a", generation: b });
    expect(await client.finished("a")).toEqual({ type: "end", sub: "a" });
    client.ws.close();
  });

  it("a client cut mid-answer resumes on a new connection with its cursor: exactly the rest, no gap, no repeat", async () => {
    const resumesBefore = await metric(url, "lifeline_resumes_total");
    const id = await startGeneration(url, ask("cut me", 200));
    const first = await WsClient.open(url);
    first.send({ type: "subscribe", sub: "s", generation: id });
    const seen = await first.next(
      (f): f is EntryFrame =>
        f.type === "entry" && f.entry !== null && (f.entry as Entry).type === "delta" && (f.entry as Entry).offset >= 5,
    );
    first.ws.terminate();
    const before = first.entryFrames("s");
    const cursor = before[before.length - 1]?.cursor ?? "";
    expect(Number(cursor)).toBeGreaterThanOrEqual(Number(seen.cursor));

    const second = await WsClient.open(url);
    second.send({ type: "subscribe", sub: "s", generation: id, cursor });
    expect(await second.finished("s")).toEqual({ type: "end", sub: "s" });
    const rest = second.entries("s");
    expect(rest[0]?.offset).toBe(Number(cursor) + 1);
    expect(rest[rest.length - 1]?.type).toBe("completed"); // still mid-answer when cut
    expectExactAnswer([...first.entries("s"), ...rest], expected("cut me", 200));
    expect(await metric(url, "lifeline_resumes_total")).toBe(resumesBefore + 1);
    second.ws.close();
  });

  it("a cursor at the terminal entry gets end at once; one past the log gets reset and the whole log", async () => {
    const id = await startGeneration(url, ask("done"));
    const client = await WsClient.open(url);
    client.send({ type: "subscribe", sub: "all", generation: id });
    await client.finished("all");
    const last = client.entryFrames("all").at(-1)?.cursor ?? "";
    client.send({ type: "subscribe", sub: "again", generation: id, cursor: last });
    expect(await client.finished("again")).toEqual({ type: "end", sub: "again" });
    expect(client.entryFrames("again")).toEqual([]);

    client.send({ type: "subscribe", sub: "ahead", generation: id, cursor: "9999" });
    expect(await client.next((f) => subOf(f) === "ahead")).toEqual({ type: "reset", sub: "ahead" });
    expect(await client.finished("ahead")).toEqual({ type: "end", sub: "ahead" });
    expectExactAnswer(client.entries("ahead"), expected("done"));
    client.ws.close();
  });

  it("unsubscribe stops the entries of that subscription, and the id can be used again", async () => {
    const id = await startGeneration(url, ask("long", 2000));
    const client = await WsClient.open(url);
    client.send({ type: "subscribe", sub: "u", generation: id });
    await client.next((f) => f.type === "entry" && f.sub === "u" && (f.entry as Entry).type === "delta");
    client.send({ type: "unsubscribe", sub: "u" });
    // Frames are handled in order: once this pong is here, nothing more may come for "u".
    client.send({ type: "ping", t: 7 });
    await client.next((f) => f.type === "pong" && f.t === 7);
    const count = client.frames.filter((f) => subOf(f) === "u").length;
    await sleep(300);
    expect(client.frames.filter((f) => subOf(f) === "u").length).toBe(count);
    await until(async () => (await metric(url, "lifeline_open_streams")) === 0);

    const cursor = client.entryFrames("u").at(-1)?.cursor ?? "";
    client.send({ type: "subscribe", sub: "u", generation: id, cursor });
    await client.next((f) => f.type === "entry" && f.sub === "u" && f.cursor === String(Number(cursor) + 1));
    client.send({ type: "unsubscribe", sub: "u" });
    client.send({ type: "unsubscribe", sub: "never-opened" }); // harmless
    client.send({ type: "ping" });
    expect(await client.next((f) => f.type === "pong")).toEqual({ type: "pong" });
    expect(client.frames.filter((f) => f.type === "error")).toEqual([]);
    client.ws.close();
  });

  it("every bad frame gets an error frame with a stable code, and the connection keeps working", async () => {
    const done = await startGeneration(url, ask("still works"));
    const client = await WsClient.open(url);
    const cases: [string, string | Buffer, string, string | undefined][] = [
      ["not JSON", '{"type":', "invalid_json", undefined],
      ["a JSON array", "[]", "invalid_request", undefined],
      ["a number", "42", "invalid_request", undefined],
      ["null", "null", "invalid_request", undefined],
      ["an unknown type", JSON.stringify({ type: "launch" }), "invalid_request", undefined],
      ["no type", JSON.stringify({ sub: "x" }), "invalid_request", "x"],
      ["subscribe without a generation", JSON.stringify({ type: "subscribe", sub: "x" }), "invalid_request", "x"],
      ["an empty sub", JSON.stringify({ type: "subscribe", sub: "", generation: done }), "invalid_request", undefined],
      ["a sub with a space", JSON.stringify({ type: "subscribe", sub: "a b", generation: done }), "invalid_request", undefined],
      [
        "a sub of 65 characters",
        JSON.stringify({ type: "subscribe", sub: "x".repeat(65), generation: done }),
        "invalid_request",
        undefined,
      ],
      ["a sub that is a number", JSON.stringify({ type: "subscribe", sub: 5, generation: done }), "invalid_request", undefined],
      ["an unknown field", JSON.stringify({ type: "subscribe", sub: "x", generation: done, from: "1" }), "invalid_request", "x"],
      ["a cursor that is a number", JSON.stringify({ type: "subscribe", sub: "x", generation: done, cursor: 3 }), "invalid_request", "x"],
      ["a ping with a string t", JSON.stringify({ type: "ping", t: "now" }), "invalid_request", undefined],
      ["a malformed generation id", JSON.stringify({ type: "subscribe", sub: "x", generation: "../etc" }), "generation_not_found", "x"],
      [
        "an unknown generation",
        JSON.stringify({ type: "subscribe", sub: "x", generation: "gen_00000000000000000000000000" }),
        "generation_not_found",
        "x",
      ],
      ...["-1", "abc", "1.5", "99999999999999999999", "1:2:3", " "].map((cursor): [string, string, string, string] => [
        `cursor ${JSON.stringify(cursor)}`,
        JSON.stringify({ type: "subscribe", sub: "x", generation: done, cursor }),
        "invalid_cursor",
        "x",
      ]),
      ["prototype poisoning", '{"type":"ping","__proto__":{"x":1}}', "invalid_request", undefined],
      ["a binary frame", Buffer.from(JSON.stringify({ type: "ping" })), "invalid_request", undefined],
      ["a frame over 64 KiB", JSON.stringify({ type: "ping", pad: "x".repeat(70 * 1024) }), "body_too_large", undefined],
    ];
    for (const [name, data, code, sub] of cases) {
      client.ws.send(data, { binary: Buffer.isBuffer(data) });
      const error = await client.nextError();
      expect({ name, code: error.error.code, sub: error.sub }).toEqual({ name, code, sub });
      expect(typeof error.error.message).toBe("string");
    }
    // A duplicate id while the first is open.
    const slow = await startGeneration(url, ask("slow one", 2000));
    client.send({ type: "subscribe", sub: "dup", generation: slow });
    client.send({ type: "subscribe", sub: "dup", generation: slow });
    expect(await client.nextError()).toMatchObject({ sub: "dup", error: { code: "invalid_request" } });
    client.send({ type: "unsubscribe", sub: "dup" });

    client.send({ type: "ping", t: 1 });
    expect(await client.next((f) => f.type === "pong")).toEqual({ type: "pong", t: 1 });
    client.send({ type: "subscribe", sub: "ok", generation: done });
    expect(await client.finished("ok")).toEqual({ type: "end", sub: "ok" });
    expectExactAnswer(client.entries("ok"), expected("still works"));
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    client.ws.close();
  });

  it("a connection holds at most 100 subscriptions", async () => {
    const id = await startGeneration(url, ask("many", 2000));
    const client = await WsClient.open(url);
    for (let i = 0; i < 100; i++) client.send({ type: "subscribe", sub: `s${i}`, generation: id });
    client.send({ type: "subscribe", sub: "s100", generation: id });
    expect(await client.nextError()).toMatchObject({ sub: "s100", error: { code: "too_many_subscriptions" } });
    await until(async () => (await metric(url, "lifeline_open_streams")) === 100);
    client.ws.close();
    await until(async () => (await metric(url, "lifeline_open_streams")) === 0);
  });

  it("answers ping frames with pong, and sends protocol pings and ping frames every heartbeat", async () => {
    const client = await WsClient.open(url);
    client.send({ type: "ping", t: 12.5 });
    expect(await client.next((f) => f.type === "pong")).toEqual({ type: "pong", t: 12.5 });
    await until(async () => client.protocolPings.length >= 3 && client.frames.filter((f) => f.type === "ping").length >= 3);
    client.send({ type: "pong", t: 1 }); // answering a ping frame is allowed and silent
    client.send({ type: "ping" });
    await client.next((f) => f.type === "pong");
    expect(client.frames.filter((f) => f.type === "error")).toEqual([]);
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    client.ws.close();
  });

  it("cuts a connection that stops answering protocol pings", async () => {
    const client = await WsClient.open(url, { autoPong: false });
    // Cut at the second tick after it opened: within two heartbeats, long before this bound.
    const closed = await Promise.race([client.closed, sleep(15_000).then(() => undefined)]);
    expect(closed?.code).toBe(1006);
  });

  it("refuses an upgrade on another path with 404", async () => {
    expect(await upgrade(`${url.replace(/^http/, "ws")}/v1/nope`)).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
  });

  it("counts open subscriptions in lifeline_open_streams", async () => {
    await until(async () => (await metric(url, "lifeline_open_streams")) === 0);
  });
});

describe("WebSocket under pressure", () => {
  it("a client that stops reading is closed with 4008, and resumes from its cursors to exactly the answer", async () => {
    const node = await startInProcess({
      LIFELINE_HEARTBEAT_MS: "500",
      LIFELINE_COALESCE_MS: "0",
      LIFELINE_SIM_TOKENS_PER_SECOND: "1000000",
    });
    try {
      const tokens = 20_000;
      const id = await startGeneration(node.url, ask("flood", tokens));
      await readEvents(node.url, id); // the whole answer is in the log: replays go as fast as the socket takes them
      const subs = Array.from({ length: 8 }, (_, i) => `r${i}`);
      const client = await WsClient.open(node.url);
      for (const sub of subs) client.send({ type: "subscribe", sub, generation: id });
      (client.ws as unknown as { _socket: Socket })._socket.pause();
      // Followers wait at the low watermark, then the missed ping shows the client stopped reading.
      await until(async () => (await metric(node.url, "lifeline_open_streams")) === subs.length);
      await until(async () => (await metric(node.url, "lifeline_open_streams")) === 0);
      (client.ws as unknown as { _socket: Socket })._socket.resume();
      expect((await client.closed).code).toBe(WS_CLOSE_SLOW_CONSUMER);
      for (const sub of subs) expect(client.entryFrames(sub).length).toBeLessThan(tokens);

      // Resume from the cursors, as often as it takes: on a loaded machine this process may itself
      // read too slowly again (it parses 160,000 frames), and a client that is cut resumes.
      const got = new Map(subs.map((sub) => [sub, client.entryFrames(sub)]));
      const open = new Set(subs);
      for (let round = 1; open.size > 0; round++) {
        expect(round, "resumes needed").toBeLessThanOrEqual(20);
        const again = await WsClient.open(node.url);
        const asked = [...open];
        for (const sub of asked) again.send({ type: "subscribe", sub, generation: id, cursor: got.get(sub)!.at(-1)?.cursor ?? "0" });
        for (const sub of asked) {
          const fin = await again.finished(sub, 60_000).catch(() => undefined);
          if (fin === undefined) {
            expect((await again.closed).code).toBe(WS_CLOSE_SLOW_CONSUMER);
            break;
          }
          expect(fin).toEqual({ type: "end", sub });
          open.delete(sub);
        }
        again.ws.close();
        for (const sub of asked) got.set(sub, [...got.get(sub)!, ...again.entryFrames(sub)]);
      }
      for (const sub of subs)
        expectExactAnswer(
          got.get(sub)!.map((f) => f.entry as Entry),
          expected("flood", tokens),
        );
    } finally {
      await node.stop();
    }
  });

  it("gateway shutdown closes every socket with 1001", async () => {
    const node = await startInProcess({ LIFELINE_HEARTBEAT_MS: "1000", LIFELINE_SIM_TOKENS_PER_SECOND: "50" });
    let stopped = false;
    try {
      // Far longer than the test may run (11 min at 50 tokens/s): a stop that waited for it would time the test out.
      const id = await startGeneration(node.url, ask("interrupted", 32_768));
      const busy = await WsClient.open(node.url);
      busy.send({ type: "subscribe", sub: "s", generation: id });
      await busy.next((f) => f.type === "entry" && (f.entry as Entry).type === "delta");
      const idle = await WsClient.open(node.url);
      await node.stop();
      stopped = true;
      expect((await busy.closed).code).toBe(1001);
      expect((await idle.closed).code).toBe(1001);
    } finally {
      if (!stopped) await node.stop();
    }
  });
});
