import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { ChatMessage } from "../../src/core/entries.ts";
import { SseParser, type SseMessage } from "../../src/core/wire.ts";
import { parseRetryAfter } from "../../src/core/retry.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { parseSimLlmFlags } from "../../src/sim-llm/flags.ts";
import { startSimLlm, type SimLlm, type SimLlmOptions, type SimLlmStats } from "../../src/sim-llm/server.ts";
import { until } from "../support/waits.ts";

const BIN = fileURLToPath(new URL("../../bin/lifeline", import.meta.url));
const messages: ChatMessage[] = [{ role: "user", content: "Tell me about durable logs" }];
const request = { messages, seed: 7, max_tokens: 30 };
const full = simTokens(request).join("");

const running: SimLlm[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((sim) => sim.close()));
});

async function sim(options: SimLlmOptions = {}): Promise<SimLlm> {
  const started = await startSimLlm({ tokensPerSecond: 1000, ...options });
  running.push(started);
  return started;
}

function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  const init: RequestInit = {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
  return fetch(`${base}${path}`, signal ? { ...init, signal } : init);
}

const chat = (base: string, extra: object = {}, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> =>
  post(base, "/v1/chat/completions", { model: "sim", ...request, stream: true, ...extra }, headers, signal);

type ReadOutcome = "matched" | "ended" | "failed" | "timeout";

/** Reads an SSE body step by step, so a test can tell silence from an end from a cut. */
class SseReader {
  readonly messages: SseMessage[] = [];
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  readonly #parser = new SseParser((message) => this.messages.push(message));
  #pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;

  constructor(res: Response) {
    if (!res.body) throw new Error("no body");
    this.#reader = res.body.getReader();
  }

  async readUntil(until: (messages: SseMessage[]) => boolean = () => false, timeoutMs = 5000): Promise<ReadOutcome> {
    const deadline = performance.now() + timeoutMs;
    while (!until(this.messages)) {
      this.#pending ??= this.#reader.read();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<"timeout">(
        (resolve) => (timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - performance.now()))),
      );
      const step = await Promise.race([
        this.#pending.then(
          (r) => r,
          () => "failed" as const,
        ),
        timeout,
      ]);
      clearTimeout(timer);
      if (step === "timeout") return "timeout";
      this.#pending = undefined;
      if (step === "failed") return "failed";
      if (step.done) return "ended";
      this.#parser.push(this.#decoder.decode(step.value, { stream: true }));
    }
    return "matched";
  }
}

/** The text of OpenAI chunks. */
function openAiText(frames: readonly SseMessage[]): string {
  return frames
    .filter((m) => m.data !== "[DONE]")
    .map((m) => (JSON.parse(m.data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "")
    .join("");
}

const contentTokens = (frames: readonly SseMessage[]): number =>
  frames.filter((m) => m.data.includes('"content":"') && !m.data.includes('"role"')).length;

async function streamText(res: Response): Promise<{ text: string; frames: SseMessage[]; outcome: ReadOutcome }> {
  const reader = new SseReader(res);
  const outcome = await reader.readUntil();
  return { text: openAiText(reader.messages), frames: reader.messages, outcome };
}

const httpStats = async (base: string): Promise<SimLlmStats> => (await (await fetch(`${base}/stats`)).json()) as SimLlmStats;

describe("sim-llm over the OpenAI chat-completions wire", () => {
  it("streams the sim's answer token by token, then finish_reason stop, usage and [DONE]", async () => {
    const { url } = await sim();
    const res = await chat(url, { stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const { text, frames, outcome } = await streamText(res);
    expect(outcome).toBe("ended");
    expect(text).toBe(full);
    expect(contentTokens(frames)).toBe(30);
    const chunks = frames
      .slice(0, -1)
      .map((m) => JSON.parse(m.data) as { object: string; choices: { delta: object; finish_reason: string | null }[]; usage: unknown });
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks[0]?.choices[0]?.delta).toMatchObject({ role: "assistant" });
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe("stop");
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 30, total_tokens: 30 + 5 } });
    expect(frames.at(-1)?.data).toBe("[DONE]");
  });

  it("answers stream:false with one chat.completion of the same text", async () => {
    const { url } = await sim();
    const body = (await (await chat(url, { stream: false })).json()) as {
      object: string;
      choices: { message: { content: string }; finish_reason: string }[];
    };
    expect(body.object).toBe("chat.completion");
    expect(body.choices[0]).toMatchObject({ message: { role: "assistant", content: full }, finish_reason: "stop" });
  });

  it("continues a trailing assistant message byte for byte, even from the middle of a token", async () => {
    const { url } = await sim();
    for (const cut of [0, 1, 9, Math.floor(full.length / 2), full.length - 1, full.length]) {
      const prefix = full.slice(0, cut);
      const res = await chat(url, { messages: [...messages, { role: "assistant", content: prefix }] });
      const { text, outcome } = await streamText(res);
      expect(outcome).toBe("ended");
      expect(prefix + text).toBe(full);
    }
  });

  it("refuses bad input with a 400 in OpenAI's format and keeps serving", async () => {
    const { url } = await sim();
    const notJson = await post(url, "/v1/chat/completions", "{nope");
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { type: "invalid_request_error", message: expect.stringMatching(/JSON/) } });
    const noMessages = await post(url, "/v1/chat/completions", { model: "sim", messages: [] });
    expect(noMessages.status).toBe(400);
    expect(((await noMessages.json()) as { error: { message: string } }).error.message).toMatch(/messages/);
    const badHeader = await chat(url, {}, { "x-sim-fault": "explode" });
    expect(badHeader.status).toBe(400);
    expect(((await badHeader.json()) as { error: { message: string } }).error.message).toMatch(/x-sim-fault/);
    expect((await streamText(await chat(url))).text).toBe(full);
    expect(await httpStats(url)).toMatchObject({ requests: 4, badRequests: 3, completed: 1 });
  });

  it("lists the sim model and answers health checks", async () => {
    const { url } = await sim();
    expect(await (await fetch(`${url}/v1/models`)).json()).toMatchObject({ object: "list", data: [{ id: "sim", object: "model" }] });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });
});

describe("sim-llm over the Anthropic Messages wire", () => {
  const system = "You are terse.";
  const conversation: ChatMessage[] = [{ role: "system", content: system }, ...messages];

  it("streams the documented event sequence with the sim's text, the system prompt first", async () => {
    const { url } = await sim();
    const res = await post(
      url,
      "/v1/messages",
      { model: "sim", max_tokens: 12, system, messages, stream: true },
      { "anthropic-version": "2023-06-01" },
    );
    expect(res.status).toBe(200);
    const reader = new SseReader(res);
    expect(await reader.readUntil()).toBe("ended");
    const events = reader.messages.map((m) => m.event);
    expect(events).toEqual([
      "message_start",
      "content_block_start",
      "ping",
      ...Array<string>(12).fill("content_block_delta"),
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    const data = reader.messages.map(
      (m) => JSON.parse(m.data) as { type: string; delta?: { text?: string; stop_reason?: string }; usage?: { output_tokens: number } },
    );
    expect(data.map((d) => d.type)).toEqual(events);
    expect(data.map((d) => d.delta?.text ?? "").join("")).toBe(simTokens({ messages: conversation, max_tokens: 12 }).join(""));
    expect(data.at(-2)).toMatchObject({ delta: { stop_reason: "end_turn" }, usage: { output_tokens: 12 } });
  });

  it("continues a prefill and answers errors in Anthropic's format", async () => {
    const { url } = await sim();
    const whole = simTokens({ messages: conversation, max_tokens: 20 }).join("");
    const prefix = whole.slice(0, 17);
    const res = await post(url, "/v1/messages", {
      model: "sim",
      max_tokens: 20,
      system,
      messages: [...messages, { role: "assistant", content: [{ type: "text", text: prefix }] }],
    });
    const body = (await res.json()) as { type: string; content: { text: string }[] };
    expect(body.type).toBe("message");
    expect(prefix + (body.content[0]?.text ?? "")).toBe(whole);
    const bad = await post(url, "/v1/messages", { model: "sim", messages });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error", message: expect.stringMatching(/max_tokens/) },
    });
  });
});

describe("sim-llm fault injection", () => {
  it("error: the chosen status before any streaming, in each wire's error format", async () => {
    const { url } = await sim({ fault: "error", faultStatus: 503 });
    const res = await chat(url);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { type: "server_error" } });
    const anthropic = await post(url, "/v1/messages", { model: "sim", max_tokens: 5, messages, stream: true });
    expect(anthropic.status).toBe(503);
    expect(await anthropic.json()).toMatchObject({ type: "error", error: { type: "api_error" } });
  });

  it("rate-limit: 429 with Retry-After", async () => {
    const { url } = await sim({ fault: "rate-limit", retryAfterSeconds: 2 });
    const res = await chat(url);
    expect(res.status).toBe(429);
    expect(parseRetryAfter(res.headers.get("retry-after"))).toBe(2000);
    expect(await res.json()).toMatchObject({ error: { code: "rate_limit_exceeded" } });
  });

  it("stall: silence after N tokens with the connection open, until the client aborts", async () => {
    const { url } = await sim({ fault: "stall", faultAfterTokens: 3 });
    const client = new AbortController();
    const reader = new SseReader(await chat(url, {}, {}, client.signal));
    expect(await reader.readUntil((m) => contentTokens(m) === 3)).toBe("matched");
    expect(await reader.readUntil(() => false, 400)).toBe("timeout");
    expect(contentTokens(reader.messages)).toBe(3);
    expect(await httpStats(url)).toMatchObject({ openStreams: 1, abortedByClient: 0, faults: { stall: 1 } });
    client.abort();
    await until(async () => (await httpStats(url)).abortedByClient === 1);
    expect(await httpStats(url)).toMatchObject({ openStreams: 0, completed: 0 });
  });

  it("close() drops a stalled stream at once", async () => {
    const s = await sim({ fault: "stall", faultAfterTokens: 0 });
    const reader = new SseReader(await chat(s.url));
    expect(await reader.readUntil(() => false, 100)).toBe("timeout");
    await s.close(); // the stall never ends by itself: that close() returns is the proof
    expect(await reader.readUntil()).not.toBe("timeout");
  });

  it("cut: the stream breaks after N tokens without [DONE]", async () => {
    const s = await sim({ fault: "cut", faultAfterTokens: 4 });
    const { text, frames, outcome } = await streamText(await chat(s.url));
    expect(outcome).toBe("failed");
    expect(text).toBe(simTokens(request).slice(0, 4).join(""));
    expect(frames.some((m) => m.data === "[DONE]")).toBe(false);
    await until(async () => s.stats().openStreams === 0);
    expect(s.stats()).toMatchObject({ abortedByClient: 0, completed: 0, faults: { cut: 1 } });
  });

  it("slow-first-token: headers at once, the first token after the delay", async () => {
    const { url } = await sim({ fault: "slow-first-token", firstTokenDelayMs: 1500 });
    const t0 = performance.now();
    const res = await chat(url);
    expect(res.status).toBe(200);
    const reader = new SseReader(res);
    // The headers came alone: nothing of the body follows them for a while.
    expect(await reader.readUntil((m) => contentTokens(m) >= 1, 200)).toBe("timeout");
    expect(await reader.readUntil((m) => contentTokens(m) >= 1)).toBe("matched");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1490);
    expect(await reader.readUntil()).toBe("ended");
    expect(openAiText(reader.messages)).toBe(full);
  });

  it("--fault-count 1 fails only the first request", async () => {
    const { url } = await sim({ fault: "error", faultCount: 1 });
    expect((await chat(url, { stream: false })).status).toBe(500);
    expect((await chat(url, { stream: false })).status).toBe(200);
    expect((await chat(url, { stream: false })).status).toBe(200);
  });

  it("--fault-rate with a seed faults the same requests every time", async () => {
    const statuses = async (seed: number): Promise<number[]> => {
      const { url } = await sim({ fault: "error", faultRate: 0.5, seed });
      const out: number[] = [];
      for (let i = 0; i < 16; i++) out.push((await chat(url, { stream: false, max_tokens: 1 })).status);
      return out;
    };
    const first = await statuses(42);
    expect(await statuses(42)).toEqual(first);
    expect(first).toContain(500);
    expect(first).toContain(200);
    expect(await statuses(43)).not.toEqual(first);
  });

  it("x-sim-fault makes one request misbehave on a clean server", async () => {
    const { url } = await sim();
    expect((await chat(url, {}, { "x-sim-fault": "error;status=502" })).status).toBe(502);
    const cut = await streamText(await chat(url, {}, { "x-sim-fault": "cut;after=2" }));
    expect(cut.outcome).toBe("failed");
    expect(contentTokens(cut.frames)).toBe(2);
    expect((await streamText(await chat(url))).text).toBe(full);
  });
});

describe("lifeline sim-llm", () => {
  it("runs as a process: says where it listens, injects its fault, stops on SIGTERM", async () => {
    const child = spawn(process.execPath, [BIN, "sim-llm", "--port", "0", "--fault", "error"], { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      let err = "";
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`sim-llm did not start:\n${err}`)), 45_000);
        child.stderr.on("data", (chunk: Buffer) => {
          err += chunk.toString();
          const match = /sim-llm listening at (http:\/\/\S+)/.exec(err);
          if (match?.[1]) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        });
      });
      expect((await chat(url)).status).toBe(500);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("takes flags over the environment over the defaults", () => {
    const options = parseSimLlmFlags(["--fault", "cut", "--fault-after-tokens=2"], {
      LIFELINE_SIM_LLM_FAULT: "stall",
      LIFELINE_SIM_TOKENS_PER_SECOND: "90",
    });
    expect(options).toMatchObject({
      fault: "cut",
      faultAfterTokens: 2,
      tokensPerSecond: 90,
      port: 8788,
      faultCount: undefined,
      faultRate: 1,
    });
  });

  it("refuses bad flags with one error listing each of them, exit 2", () => {
    const bad = spawnSync(process.execPath, [BIN, "sim-llm", "--port", "x", "--fault", "explode", "--bogus", "--fault-rate", "2"], {
      encoding: "utf8",
    });
    expect(bad.status).toBe(2);
    for (const flag of ["--port", "--fault", "--bogus", "--fault-rate"]) expect(bad.stderr).toContain(flag);
  });
});
