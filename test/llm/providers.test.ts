import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { GenerationRequest } from "../../src/core/entries.ts";
import { ProviderError } from "../../src/llm/provider-error.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../../src/llm/provider.ts";
import { createAnthropicProvider } from "../../src/llm/providers/anthropic.ts";
import { createOpenAICompatibleProvider } from "../../src/llm/providers/openai-compatible.ts";
import { DEFAULT_TIMEOUTS, streamWithTimeouts } from "../../src/llm/resilience/timeouts.ts";
import { startSimLlm, type SimLlm } from "../../src/sim-llm/server.ts";

const API_KEY = "sk-test-4f9c2e7d1b";

/** A request as the server received it; `closed` settles when its response closes, with whether it was finished. */
interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: { messages: { role: string; content: unknown }[]; [key: string]: unknown };
  readonly closed: Promise<boolean>;
}

type Respond = (res: ServerResponse) => void;

const servers: Server[] = [];

/** A real HTTP server on 127.0.0.1, port 0, answering every request with `respond`. */
async function serve(respond: Respond): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const closed = new Promise<boolean>((resolve, reject) => {
        res.on("close", () => resolve(res.writableFinished));
        setTimeout(() => reject(new Error("the response was not closed within 5 s")), 5000).unref();
      });
      closed.catch(() => undefined);
      received.push({ path: req.url ?? "", headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8")), closed });
      respond(res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, received };
}

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((server) => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    }),
  );
});

/** One wire format: how to build its provider and how its server speaks. */
interface Wire {
  readonly name: string;
  readonly path: string;
  create(url: string, apiKey?: string): ModelProvider;
  keyHeader(headers: IncomingHttpHeaders): string | undefined;
  start(): string;
  token(text: string): string;
  finish(promptTokens: number, completionTokens: number): string;
  /** An error the provider reports inside a 200 stream, and the status it stands for. */
  readonly inBandError: { readonly frame: string; readonly status: number };
  errorBody(message: string): unknown;
}

const sse = (data: unknown, event?: string): string => `${event ? `event: ${event}\n` : ""}data: ${JSON.stringify(data)}\n\n`;
const chunk = (delta: unknown, finish: string | null = null): string =>
  sse({ id: "c1", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] });
const anthropicEvent = (type: string, data: Record<string, unknown> = {}): string => sse({ type, ...data }, type);
const messageStart = (usage: Record<string, number>): string =>
  anthropicEvent("message_start", {
    message: { id: "msg_1", type: "message", role: "assistant", model: "m", content: [], stop_reason: null, stop_sequence: null, usage },
  });

const openAi: Wire = {
  name: "openai-compatible",
  path: "/v1/chat/completions",
  create: (url, apiKey) =>
    createOpenAICompatibleProvider({ name: "oa-test", baseUrl: url, model: "gpt-test", ...(apiKey ? { apiKey } : {}) }),
  keyHeader: (headers) => headers.authorization,
  start: () => chunk({ role: "assistant", content: "" }),
  token: (text) => chunk({ content: text }),
  finish: (prompt, completion) =>
    chunk({}, "stop") +
    sse({
      id: "c1",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [],
      usage: { prompt_tokens: prompt, completion_tokens: completion },
    }) +
    "data: [DONE]\n\n",
  inBandError: { frame: sse({ error: { message: "The server had an error", type: "server_error", code: null } }), status: 500 },
  errorBody: (message) => ({ error: { message, type: "invalid_request_error", code: null } }),
};

const anthropic: Wire = {
  name: "anthropic",
  path: "/v1/messages",
  create: (url, apiKey) =>
    createAnthropicProvider({ name: "an-test", baseUrl: url, model: "sim-anthropic", ...(apiKey ? { apiKey } : {}) }),
  keyHeader: (headers) => {
    const key = headers["x-api-key"];
    return typeof key === "string" ? key : undefined;
  },
  start: () =>
    messageStart({ input_tokens: 3, output_tokens: 0 }) +
    anthropicEvent("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
  token: (text) => anthropicEvent("content_block_delta", { index: 0, delta: { type: "text_delta", text } }),
  finish: (_prompt, completion) =>
    anthropicEvent("content_block_stop", { index: 0 }) +
    anthropicEvent("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: completion } }) +
    anthropicEvent("message_stop"),
  inBandError: { frame: anthropicEvent("error", { error: { type: "overloaded_error", message: "Overloaded" } }), status: 529 },
  errorBody: (message) => ({ type: "error", error: { type: "invalid_request_error", message } }),
};

function streamOf(wire: Wire, tokens: readonly string[], end: "finish" | "open" = "finish"): Respond {
  return (res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(wire.start() + tokens.map((t) => wire.token(t)).join(""));
    if (end === "finish") res.end(wire.finish(3, tokens.length));
  };
}

function errorOf(wire: Wire, status: number, headers: Record<string, string> = {}, message = "nope"): Respond {
  return (res) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(wire.errorBody(message)));
  };
}

const REQUEST: GenerationRequest = {
  model: "m",
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
  ],
};

function callOf(overrides: Partial<ModelCall> = {}): ModelCall {
  return { request: REQUEST, prefix: "", signal: new AbortController().signal, ...overrides };
}

/** Every event the provider yields, and what it threw. */
async function run(provider: ModelProvider, call: ModelCall = callOf()): Promise<{ events: ModelEvent[]; text: string; error: unknown }> {
  const events: ModelEvent[] = [];
  let error: unknown;
  try {
    for await (const event of provider.stream(call)) events.push(event);
  } catch (e) {
    error = e;
  }
  const text = events.map((e) => (e.type === "token" ? e.text : "")).join("");
  return { events, text, error };
}

function providerError(error: unknown): ProviderError {
  expect(error).toBeInstanceOf(ProviderError);
  return error as ProviderError;
}

function lastMessage(received: Received): { role: string; text: string } {
  const last = received.body.messages.at(-1);
  const content = last?.content;
  const text = typeof content === "string" ? content : (content as { text: string }[]).map((p) => p.text).join("");
  return { role: last?.role ?? "", text };
}

describe.each([openAi, anthropic])("$name provider", (wire) => {
  it("streams open, the text deltas as tokens (each counted), then one finish with usage", async () => {
    const { url, received } = await serve(streamOf(wire, ["Hel", "lo", " there"]));
    const { events, text, error } = await run(wire.create(url, API_KEY));
    expect(error).toBeUndefined();
    expect(events[0]).toEqual({ type: "open" });
    expect(events.at(-1)).toEqual({ type: "finish", finishReason: "stop", usage: { promptTokens: 3, completionTokens: 3 } });
    const tokens = events.slice(1, -1);
    expect(tokens.every((e) => e.type === "token")).toBe(true);
    expect(text).toBe("Hello there");
    expect(tokens.reduce((n, e) => n + (e.type === "token" ? (e.tokens ?? 1) : 0), 0)).toBe(3);
    expect(received[0]?.path).toBe(wire.path);
    expect(received[0]?.body.stream).toBe(true);
  });

  it("sends the prefix as a trailing assistant message and emits only what the model adds", async () => {
    const { url, received } = await serve(streamOf(wire, [" and", " more"]));
    const { text, error } = await run(wire.create(url), callOf({ prefix: "Half an answer" }));
    expect(error).toBeUndefined();
    expect(lastMessage(received[0]!)).toEqual({ role: "assistant", text: "Half an answer" });
    expect(text).toBe(" and more");
  });

  it("passes max_tokens and temperature through", async () => {
    const { url, received } = await serve(streamOf(wire, ["ok"]));
    await run(wire.create(url), callOf({ request: { ...REQUEST, max_tokens: 17, temperature: 0.25 } }));
    expect(received[0]?.body).toMatchObject({ max_tokens: 17, temperature: 0.25 });
  });

  it.each([
    [500, true],
    [503, true],
    [400, false],
    [401, false],
  ])("HTTP %i fails with a status error, retryable: %s", async (status, retryable) => {
    const { url } = await serve(errorOf(wire, status));
    const { events, error } = await run(wire.create(url, API_KEY));
    expect(events).toEqual([]);
    expect(providerError(error)).toMatchObject({ failure: "status", details: { status, retryable, provider: wire.create(url).name } });
  });

  it("429 with Retry-After: 2 asks to wait 2000 ms", async () => {
    const { url } = await serve(errorOf(wire, 429, { "retry-after": "2" }));
    const error = providerError((await run(wire.create(url))).error);
    expect(error).toMatchObject({ failure: "status", details: { status: 429, retryable: true, retryAfterMs: 2000 } });
  });

  it("retry-after-ms, when sent, is the wait", async () => {
    const { url } = await serve(errorOf(wire, 503, { "retry-after": "2", "retry-after-ms": "1500" }));
    expect(providerError((await run(wire.create(url))).error).details.retryAfterMs).toBe(1500);
  });

  it("a connection cut mid-stream is a retryable network error, not a short answer", async () => {
    const { url } = await serve((res) => {
      streamOf(wire, ["Hel", "lo"], "open")(res);
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const { events, text, error } = await run(wire.create(url));
    expect(text).toBe("Hello");
    expect(events.some((e) => e.type === "finish")).toBe(false);
    expect(providerError(error)).toMatchObject({ failure: "network", details: { retryable: true } });
  });

  it("a stream that ends cleanly before the model finished is a retryable network error", async () => {
    const { url } = await serve((res) => {
      streamOf(wire, ["Hel", "lo"], "open")(res);
      res.end();
    });
    const { events, error } = await run(wire.create(url));
    expect(events.some((e) => e.type === "finish")).toBe(false);
    expect(providerError(error)).toMatchObject({ failure: "network", details: { retryable: true } });
  });

  it("an error the provider sends inside the stream fails the call with the status it stands for", async () => {
    const { url } = await serve((res) => {
      streamOf(wire, ["Hel"], "open")(res);
      res.end(wire.inBandError.frame);
    });
    const { text, error } = await run(wire.create(url));
    expect(text).toBe("Hel");
    expect(providerError(error)).toMatchObject({ failure: "status", details: { status: wire.inBandError.status, retryable: true } });
  });

  it("a chunk that is not the wire format is a protocol error", async () => {
    const { url } = await serve((res) => {
      streamOf(wire, ["Hel"], "open")(res);
      res.end("data: {not json\n\n");
    });
    expect(providerError((await run(wire.create(url))).error)).toMatchObject({ failure: "protocol", details: { retryable: false } });
  });

  it("a refused connection is a retryable network error", async () => {
    const { url } = await serve(streamOf(wire, []));
    const server = servers.pop()!;
    await new Promise((resolve) => server.close(resolve));
    expect(providerError((await run(wire.create(url))).error)).toMatchObject({ failure: "network", details: { retryable: true } });
  });

  it("aborting mid-stream closes the upstream connection and rejects with the signal's reason", async () => {
    const { url, received } = await serve(streamOf(wire, ["Hel"], "open"));
    const controller = new AbortController();
    const reason = new Error("client went away");
    const iterator = wire
      .create(url)
      .stream(callOf({ signal: controller.signal }))
      [Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual({ type: "open" });
    expect((await iterator.next()).value).toEqual({ type: "token", text: "Hel" });
    const next = iterator.next();
    controller.abort(reason);
    await expect(next).rejects.toBe(reason);
    // The server sees its response closed before it finished: the socket is gone.
    expect(await received[0]!.closed).toBe(false);
  });

  it("aborting before the response starts closes the upstream connection and rejects with the signal's reason", async () => {
    const { url, received } = await serve(() => undefined);
    const controller = new AbortController();
    const reason = new Error("first-token timeout");
    const next = wire
      .create(url)
      .stream(callOf({ signal: controller.signal }))
      [Symbol.asyncIterator]()
      .next();
    await expect.poll(() => received.length).toBe(1);
    controller.abort(reason);
    await expect(next).rejects.toBe(reason);
    expect(await received[0]!.closed).toBe(false);
  });

  it("a consumer that stops reading closes the upstream connection", async () => {
    const { url, received } = await serve(streamOf(wire, ["Hel", "lo"], "open"));
    for await (const event of wire.create(url).stream(callOf())) {
      if (event.type === "token") break;
    }
    expect(await received[0]!.closed).toBe(false);
  });

  it("sends the API key in its header and never in an error message", async () => {
    const { url, received } = await serve(errorOf(wire, 401, {}, `Incorrect API key provided: ${API_KEY}`));
    const error = providerError((await run(wire.create(url, API_KEY))).error);
    expect(wire.keyHeader(received[0]!.headers)).toContain(API_KEY);
    expect(error.message).toContain("[redacted]");
    expect(`${error.message} ${error.stack} ${JSON.stringify(error)}`).not.toContain(API_KEY);
  });
});

describe("openai-compatible provider", () => {
  it("tokens that come in together are handed over as one event that counts them; one that comes alone, as itself", async () => {
    // The last token is written once the first event is in the consumer's hands: never in the same read.
    let firstHandedOver!: () => void;
    const handedOver = new Promise<void>((resolve) => (firstHandedOver = resolve));
    const { url } = await serve((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(openAi.start() + ["Hel", "lo", " there"].map((t) => openAi.token(t)).join("")); // one write
      void handedOver.then(() => {
        res.write(openAi.token("!"));
        setTimeout(() => res.end(openAi.finish(3, 4)), 50);
      });
    });
    const events: ModelEvent[] = [];
    for await (const event of openAi.create(url).stream(callOf())) {
      events.push(event);
      if (event.type === "token") firstHandedOver();
    }
    expect(events.filter((e) => e.type === "token")).toEqual([
      { type: "token", text: "Hello there", tokens: 3 },
      { type: "token", text: "!" },
    ]);
  });

  it.each([
    ["LF", "\n"],
    ["CRLF", "\r\n"],
    ["a lone CR", "\r"],
  ])("an answer cut anywhere across reads (lines ended by %s, characters of several bytes) reads the same", async (_name, eol) => {
    const tokens = ["Grüße", " à", " tous", " €5", " 😀", " ok"];
    const body = Buffer.from((openAi.start() + tokens.map((t) => openAi.token(t)).join("") + openAi.finish(3, 6)).replaceAll("\n", eol));
    const { url } = await serve((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      let at = 0;
      const next = (): void => {
        if (at >= body.length) return void res.end();
        res.write(body.subarray(at, (at += 7))); // seven bytes at a time: events, lines and characters cut
        setTimeout(next, 1);
      };
      next();
    });
    const { events, error } = await run(openAi.create(url));
    expect(error).toBeUndefined();
    expect(events.flatMap((e) => (e.type === "token" ? [e.text] : [])).join("")).toBe(tokens.join(""));
    expect(events.at(-1)).toMatchObject({ type: "finish", usage: { promptTokens: 3, completionTokens: 6 } });
  });

  it("a byte-order mark before the first event, cut across reads, is not part of it", async () => {
    const body = Buffer.from("\uFEFF" + openAi.token("ok") + openAi.finish(3, 1)); // the token is the first event
    const { url } = await serve((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(body.subarray(0, 2)); // the mark's first two bytes alone
      setTimeout(() => res.end(body.subarray(2)), 20);
    });
    const { events, error } = await run(openAi.create(url));
    expect(error).toBeUndefined();
    expect(events.filter((e) => e.type === "token")).toEqual([{ type: "token", text: "ok" }]);
  });

  it("in a stream whose lines end with a lone CR, a token is handed over when its event ends, not with the next read", async () => {
    let secondWriteAt = Infinity;
    const { url } = await serve((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      // The parser itself holds a last CR back (it may be half of a CRLF): "first" can go at
      // once, " second" goes when more comes.
      res.write((openAi.start() + openAi.token("first") + openAi.token(" second")).replaceAll("\n", "\r"));
      setTimeout(() => {
        secondWriteAt = performance.now();
        res.end((openAi.token(" third") + openAi.finish(3, 3)).replaceAll("\n", "\r"));
      }, 300);
    });
    let firstAt = 0;
    for await (const event of openAi.create(url).stream(callOf())) {
      if (event.type === "token" && event.text === "first") firstAt = performance.now();
    }
    expect(firstAt).toBeGreaterThan(0);
    expect(firstAt).toBeLessThan(secondWriteAt);
  });

  it("an event longer than the 8 KB the parser takes at a time, in one read, characters of several bytes astride its pieces, reads the same", async () => {
    const tokens = ["a", "é".repeat(3001) + "€".repeat(2000), " b", "😀".repeat(1500), " c"];
    const { url } = await serve((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(openAi.start() + tokens.map((t) => openAi.token(t)).join("") + openAi.finish(3, 5)); // one write
    });
    const { events, error } = await run(openAi.create(url));
    expect(error).toBeUndefined();
    expect(events.flatMap((e) => (e.type === "token" ? [e.text] : [])).join("")).toBe(tokens.join(""));
    expect(events.at(-1)).toMatchObject({ type: "finish" });
  });

  it("sends the key as Authorization: Bearer, and seed in the body", async () => {
    const { url, received } = await serve(streamOf(openAi, ["ok"]));
    await run(openAi.create(url, API_KEY), callOf({ request: { ...REQUEST, seed: 7 } }));
    expect(received[0]?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(received[0]?.body).toMatchObject({ model: "gpt-test", seed: 7, stream_options: { include_usage: true } });
  });

  it.each(["constructor", "toString", "__proto__"])("a finish reason it does not know is `other`, even one named %s", async (reason) => {
    const { url } = await serve((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(openAi.start() + openAi.token("ok") + chunk({}, reason) + "data: [DONE]\n\n");
    });
    const { events, error } = await run(openAi.create(url));
    expect(error).toBeUndefined();
    expect(events.at(-1)).toEqual({ type: "finish", finishReason: "other", usage: { promptTokens: 0, completionTokens: 0 } });
  });

  it.each(["constructor", "toString", "__proto__"])(
    "an error inside the stream whose type it does not know is the server's (500, retryable), even one named %s",
    async (type) => {
      const { url } = await serve((res) => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.end(openAi.start() + sse({ error: { message: "broken", type, code: type } }));
      });
      const error = providerError((await run(openAi.create(url))).error);
      expect(error).toMatchObject({ failure: "status", details: { status: 500, retryable: true } });
    },
  );
});

describe.each([openAi, anthropic])("a model writing faster than the worker reads, on the $name wire", (wire) => {
  it("a large buffered read is taken in pieces: timers run between them, not only once it is all parsed", async () => {
    const tokens = Array.from({ length: 4000 }, (_, i) => `t${i} `);
    const { url } = await serve(streamOf(wire, tokens)); // about 500 KB in one write
    const provider = wire.create(url);
    let turn = 0;
    let ticking = true;
    const tick = (): void => {
      turn += 1;
      if (ticking) setTimeout(tick, 0);
    };
    const eventsPerTurn = new Map<number, number>();
    const texts: string[] = [];
    for await (const event of provider.stream(callOf())) {
      if (event.type === "open") {
        await new Promise((resolve) => setTimeout(resolve, 100)); // let the whole answer pile up in the socket's buffers
        setTimeout(tick, 0);
      }
      if (event.type !== "token") continue;
      texts.push(event.text);
      const end = performance.now() + 0.1; // a consumer's work per token (the worker's coalescing, its appends)
      while (performance.now() < end);
      eventsPerTurn.set(turn, (eventsPerTurn.get(turn) ?? 0) + 1);
    }
    ticking = false;
    expect(texts.join("")).toBe(tokens.join(""));
    // A 10 ms slice holds about a hundred tokens at 0.1 ms each, plus the rest of a piece of 8 KB
    // (about a hundred chunks); a whole read of 64 KB or more is over 500.
    expect(Math.max(...eventsPerTurn.values())).toBeLessThanOrEqual(300);
  });
});

describe("a call under the timeouts", () => {
  it("gives a finished response's socket back: the next call goes over the same connection", async () => {
    const { url, received } = await serve(streamOf(openAi, ["one", " two"]));
    const connections: unknown[] = [];
    servers.at(-1)!.on("connection", (socket) => connections.push(socket));
    const provider = openAi.create(url);
    for (let i = 0; i < 2; i += 1) {
      const texts: string[] = [];
      // As the worker reads it: up to the finish, then the stream is returned.
      for await (const event of streamWithTimeouts(provider, callOf(), DEFAULT_TIMEOUTS)) {
        if (event.type === "token") texts.push(event.text);
        if (event.type === "finish") break;
      }
      expect(texts.join("")).toBe("one two");
      await received[i]!.closed;
      await new Promise((resolve) => setTimeout(resolve, 500)); // the drained response hands its socket back to the agent
    }
    expect(received).toHaveLength(2);
    expect(connections).toHaveLength(1);
  });
});

describe("anthropic provider", () => {
  it("sends the key as x-api-key, the system prompt apart, and a default max_tokens", async () => {
    const { url, received } = await serve(streamOf(anthropic, ["ok"]));
    await run(anthropic.create(url, API_KEY));
    expect(received[0]?.headers["x-api-key"]).toBe(API_KEY);
    expect(received[0]?.body).toMatchObject({ model: "sim-anthropic", max_tokens: 4096, system: [{ type: "text", text: "Be brief." }] });
  });

  it("sends no x-api-key at all when no key is configured", async () => {
    const { url, received } = await serve(streamOf(anthropic, ["ok"]));
    await run(anthropic.create(url));
    expect(received[0]?.headers).not.toHaveProperty("x-api-key");
  });

  it("sends the API version, no seed, a temperature above 1 as 1, and messages of one role in a row as one turn", async () => {
    const { url, received } = await serve(streamOf(anthropic, ["ok"]));
    const request: GenerationRequest = {
      model: "m",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "user", content: "Are you there?" },
        { role: "assistant", content: "Yes. " },
      ],
      temperature: 1.7,
      seed: 7,
    };
    await run(anthropic.create(url), callOf({ request }));
    expect(received[0]?.headers["anthropic-version"]).toBe("2023-06-01");
    expect(received[0]?.body).not.toHaveProperty("seed");
    expect(received[0]?.body).toMatchObject({
      temperature: 1,
      system: [{ type: "text", text: "Be brief." }],
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "Hi" },
            { type: "text", text: "Are you there?" },
          ],
        },
        { role: "assistant", content: [{ type: "text", text: "Yes." }] }, // no trailing whitespace: the API refuses it
      ],
    });
  });

  it("reads the answer's text only, counts the prompt's cached tokens, and names the stop reason in the common words", async () => {
    const { url } = await serve((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(
        messageStart({ input_tokens: 3, cache_read_input_tokens: 5, cache_creation_input_tokens: 2, output_tokens: 1 }) +
          anthropicEvent("ping") +
          anthropicEvent("content_block_start", { index: 0, content_block: { type: "thinking", thinking: "" } }) +
          anthropicEvent("content_block_delta", { index: 0, delta: { type: "thinking_delta", thinking: "Let me see." } }) +
          anthropicEvent("content_block_stop", { index: 0 }) +
          anthropicEvent("content_block_start", { index: 1, content_block: { type: "text", text: "" } }) +
          anthropicEvent("content_block_delta", { index: 1, delta: { type: "text_delta", text: "Hel" } }) +
          anthropicEvent("a_later_event_type", { index: 1, what: "the API may add events; clients skip them" }) +
          anthropicEvent("content_block_delta", { index: 1, delta: { type: "text_delta", text: "lo" } }) +
          anthropicEvent("content_block_stop", { index: 1 }) +
          anthropicEvent("message_delta", { delta: { stop_reason: "max_tokens", stop_sequence: null }, usage: { output_tokens: 2 } }) +
          anthropicEvent("message_stop"),
      );
    });
    const { events, text, error } = await run(anthropic.create(url));
    expect(error).toBeUndefined();
    expect(text).toBe("Hello");
    expect(events.at(-1)).toEqual({ type: "finish", finishReason: "length", usage: { promptTokens: 10, completionTokens: 2 } });
  });

  /** A model that refuses any temperature and a max_tokens over 4,096, as the Messages API words it. */
  const refusingModel = async () => {
    let seen: Received[] = [];
    const served = await serve((res) => {
      const body = seen.at(-1)!.body as { temperature?: number; max_tokens?: number };
      if (body.temperature !== undefined) return errorOf(anthropic, 400, {}, "temperature: not supported for this model")(res);
      if ((body.max_tokens ?? 0) > 4096) {
        const message = `max_tokens: ${body.max_tokens} > 4096, which is the maximum allowed number of output tokens for sim-anthropic`;
        return errorOf(anthropic, 400, {}, message)(res);
      }
      streamOf(anthropic, ["ok"])(res);
    });
    seen = served.received;
    return served;
  };
  const asking = (temperature: number, maxTokens: number) => callOf({ request: { ...REQUEST, temperature, max_tokens: maxTokens } });

  it("a model that refuses a temperature, or a max_tokens above its limit, is asked again without it, and so are the provider's later calls", async () => {
    const { url, received } = await refusingModel();
    const provider = anthropic.create(url);
    expect(await run(provider, asking(0.5, 100))).toMatchObject({ text: "ok", error: undefined });
    expect(await run(provider, asking(0.5, 8000))).toMatchObject({ text: "ok", error: undefined });
    expect(await run(provider, asking(0.7, 9000))).toMatchObject({ text: "ok", error: undefined });
    expect(received.map((r) => [r.body.temperature, r.body.max_tokens])).toEqual([
      [0.5, 100],
      [undefined, 100],
      [undefined, 8000],
      [undefined, 4096],
      [undefined, 4096], // the third call: both already known
    ]);
    // Any other refusal fails the call as it is.
    const { url: other } = await serve(errorOf(anthropic, 400, {}, "messages: roles must alternate"));
    expect(providerError((await run(anthropic.create(other), asking(0.5, 100))).error)).toMatchObject({
      details: { status: 400, retryable: false },
    });
  });

  it("calls sent together before the first refusal are each sent again, and one refused twice is sent twice more", async () => {
    const { url, received } = await refusingModel();
    const provider = anthropic.create(url);
    const results = await Promise.all([run(provider, asking(0.5, 8000)), run(provider, asking(0.5, 100)), run(provider, asking(0.9, 100))]);
    expect(results.map((r) => [r.text, r.error])).toEqual([
      ["ok", undefined],
      ["ok", undefined],
      ["ok", undefined],
    ]);
    const sent = received.map((r) => [r.body.temperature, r.body.max_tokens]);
    expect(sent.filter(([temperature]) => temperature !== undefined)).toHaveLength(3);
    expect(sent.filter(([temperature]) => temperature === undefined)).toEqual(
      expect.arrayContaining([
        [undefined, 8000],
        [undefined, 4096],
        [undefined, 100],
        [undefined, 100],
      ]),
    );
    expect(sent).toHaveLength(7);
  });

  it("a usage count a later event leaves out or sends as null keeps its value; an end with no stop reason finishes as other", async () => {
    const { url } = await serve((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(
        messageStart({ input_tokens: 3, cache_read_input_tokens: 1000, output_tokens: 1 }) +
          anthropic.token("Hi") +
          anthropicEvent("message_delta", { delta: {}, usage: { input_tokens: 3, cache_read_input_tokens: null, output_tokens: 5 } }) +
          anthropicEvent("message_stop"),
      );
    });
    const { events, error } = await run(anthropic.create(url));
    expect(error).toBeUndefined();
    expect(events.at(-1)).toEqual({ type: "finish", finishReason: "other", usage: { promptTokens: 1003, completionTokens: 5 } });
  });

  it("an event whose data names no type is a protocol error", async () => {
    const { url } = await serve((res) => {
      streamOf(anthropic, ["Hel"], "open")(res);
      res.end(sse({ delta: { text: "lo" } }, "content_block_delta"));
    });
    expect(providerError((await run(anthropic.create(url))).error)).toMatchObject({ failure: "protocol", details: { retryable: false } });
  });

  it("a prefix ending in whitespace is sent trimmed, and the whitespace the model repeats is not doubled", async () => {
    const { url, received } = await serve(streamOf(anthropic, [" ", " wor", "ld"]));
    const { text } = await run(anthropic.create(url), callOf({ prefix: "Hello  " }));
    expect(lastMessage(received[0]!)).toEqual({ role: "assistant", text: "Hello" });
    expect("Hello  " + text).toBe("Hello  world");
  });
});

describe.each([openAi, anthropic])("$name provider against sim-llm", (wire) => {
  let sim: SimLlm | undefined;
  afterEach(async () => {
    await sim?.close();
    sim = undefined;
  });

  it("an answer cut anywhere and continued through the provider is byte-identical to the uninterrupted one", async () => {
    sim = await startSimLlm({ tokensPerSecond: 100_000 });
    const provider = wire.create(`${sim.url}/v1`, API_KEY);
    const request: GenerationRequest = { ...REQUEST, max_tokens: 12 };
    const whole = await run(provider, callOf({ request }));
    expect(whole.error).toBeUndefined();
    expect(whole.text.split(" ")).toHaveLength(12);
    const space = whole.text.indexOf(" ", 5);
    // Cut inside a word, just after a space (the prefill then ends in whitespace) and just before one.
    for (const cut of [3, space + 1, space, whole.text.length - 2]) {
      const prefix = whole.text.slice(0, cut);
      const rest = await run(provider, callOf({ request, prefix }));
      expect(rest.error).toBeUndefined();
      expect(prefix + rest.text).toBe(whole.text);
    }
  });
});
