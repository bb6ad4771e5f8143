import { Chat } from "@ai-sdk/react";
import { DefaultChatTransport, type UIMessage } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LifelineNode } from "../../src/cli/node.ts";
import { startInProcess } from "../support/in-process.ts";
import { AI_SDK_API, readStream, simAnswerTo, textOf, transportFor, userMessage } from "../support/ai-sdk-client.ts";
import { simText } from "../support/sim-answer.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

describe("the AI SDK door, with the official clients", () => {
  let node: LifelineNode & { url: string };
  beforeAll(async () => {
    node = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "200" });
  });
  afterAll(async () => node.stop());

  it("DefaultChatTransport.sendMessages streams the answer as the SDK's chunks, and readUIMessageStream builds the exact text", async () => {
    const transport = transportFor(node.url, { max_tokens: 24, seed: 3 });
    const stream = await transport.sendMessages({
      chatId: "plain-chat",
      messages: [userMessage("hello door")],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    const read = await readStream(stream);
    expect(read.failure).toBeUndefined();
    expect(read.errors).toEqual([]);
    expect(textOf(read.message)).toBe(simAnswerTo("hello door", { max_tokens: 24, seed: 3 }));
    const types = read.chunks.map((c) => c.type);
    expect(types.slice(0, 3)).toEqual(["start", "start-step", "text-start"]);
    expect(types.slice(-3)).toEqual(["text-end", "finish-step", "finish"]);
    expect(new Set(types.slice(3, -3))).toEqual(new Set(["text-delta"]));
    expect(read.chunks.at(-1)).toMatchObject({ type: "finish", finishReason: expect.stringMatching(/^(stop|length)$/) });
    // The message id is the generation's: the native API can read the same answer.
    const messageId = read.message?.id ?? "";
    expect(messageId).toMatch(/^gen_/);
    const view = (await (await fetch(`${node.url}/v1/generations/${messageId}`)).json()) as { text: string };
    expect(view.text).toBe(textOf(read.message));
  });

  it("answers with the SSE framing and headers of createUIMessageStreamResponse", async () => {
    const response = await fetch(`${node.url}${AI_SDK_API}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: "framing", messages: [userMessage("frames")], trigger: "submit-message", max_tokens: 5 }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-vercel-ai-ui-message-stream")).toBe("v1");
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const body = await response.text();
    const frames = body.split("\n\n").filter((frame) => frame !== "" && !frame.startsWith(":"));
    for (const frame of frames) expect(frame).toMatch(/^data: /);
    expect(frames.at(-1)).toBe("data: [DONE]");
    expect(JSON.parse(frames[0]!.slice("data: ".length))).toEqual({ type: "start", messageId: expect.stringMatching(/^gen_/) });
  });

  it("reconnectToStream gets 204 (null) when the chat has no answer in progress", async () => {
    const transport = transportFor(node.url);
    expect(await transport.reconnectToStream({ chatId: "never-asked" })).toBeNull();
    const done = await transport.sendMessages({
      chatId: "finished-chat",
      messages: [userMessage("short")],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
      body: { max_tokens: 3 },
    });
    await readStream(done);
    expect(await transport.reconnectToStream({ chatId: "finished-chat" })).toBeNull();
  });

  it("Chat from @ai-sdk/react sends, streams and ends ready with the exact text; regenerate starts a new answer", async () => {
    const chat = new Chat<UIMessage>({ id: "react-chat", transport: transportFor(node.url, { max_tokens: 20, seed: 9 }) });
    await chat.sendMessage({ text: "a react question" });
    expect(chat.status).toBe("ready");
    expect(chat.error).toBeUndefined();
    expect(chat.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(textOf(chat.messages[1])).toBe(simAnswerTo("a react question", { max_tokens: 20, seed: 9 }));
    const firstId = chat.messages[1]!.id;
    await chat.regenerate();
    expect(chat.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(chat.messages[1]!.id).not.toBe(firstId);
    expect(textOf(chat.messages[1])).toBe(simAnswerTo("a react question", { max_tokens: 20, seed: 9 }));
    // A second turn sends the whole conversation, the assistant's step-start part included.
    await chat.sendMessage({ text: "and another" });
    expect(chat.status).toBe("ready");
    expect(chat.messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(textOf(chat.messages[3]).length).toBeGreaterThan(0);
  });

  it("the stop endpoint cancels the answer: the stream ends with abort, and the chat has nothing left to resume", async () => {
    const slow = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "20" });
    try {
      const transport = transportFor(slow.url, { max_tokens: 200 });
      const stream = await transport.sendMessages({
        chatId: "stop-me",
        messages: [userMessage("a long one")],
        trigger: "submit-message",
        messageId: undefined,
        abortSignal: undefined,
      });
      let stopped: Promise<Response> | undefined;
      const read = await readStream(stream, (chunk) => {
        if (chunk.type === "text-delta" && !stopped) stopped = fetch(`${slow.url}${AI_SDK_API}/stop-me/stop`, { method: "POST" });
      });
      const answer = await stopped!;
      expect(answer.status).toBe(202);
      expect(await answer.json()).toEqual({ chatId: "stop-me", generationId: read.message?.id, status: "cancelled" });
      expect(read.chunks.at(-1)).toEqual({ type: "abort", reason: "cancelled" });
      expect(read.failure).toBeUndefined();
      expect(textOf(read.message).length).toBeLessThan(simAnswerTo("a long one", { max_tokens: 200 }).length);
      expect(await transport.reconnectToStream({ chatId: "stop-me" })).toBeNull();
      // Stopping again is the same answer; the generation says cancelled.
      expect((await fetch(`${slow.url}${AI_SDK_API}/stop-me/stop`, { method: "POST" })).status).toBe(202);
      const view = (await (await fetch(`${slow.url}/v1/generations/${read.message?.id}`)).json()) as { status: string };
      expect(view.status).toBe("cancelled");
    } finally {
      await slow.stop();
    }
  });

  it("Chat with the stop endpoint: the answer is cancelled, the chat ends ready with the text so far, and nothing is left to resume", async () => {
    const slow = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "20" });
    try {
      const fields = { max_tokens: 200 };
      const chat = new Chat<UIMessage>({ id: "react-stop", transport: transportFor(slow.url, fields) });
      const sent = chat.sendMessage({ text: "stop me from react" });
      await until(() => textOf(chat.messages[1]).length > 0, 30_000, "the first text");
      const stopped = await fetch(`${slow.url}${AI_SDK_API}/react-stop/stop`, { method: "POST" });
      expect(stopped.status).toBe(202);
      await sent;
      expect(chat.status).toBe("ready");
      expect(chat.error).toBeUndefined();
      const shown = textOf(chat.messages[1]);
      const full = simAnswerTo("stop me from react", fields);
      expect(full.startsWith(shown)).toBe(true);
      expect(shown.length).toBeLessThan(full.length);
      await chat.resumeStream();
      expect(textOf(chat.messages[1])).toBe(shown); // 204: nothing to resume, nothing changes
      expect(chat.status).toBe("ready");
    } finally {
      await slow.stop();
    }
  });

  it("a gateway that shuts down mid-answer ends the stream with a shutting_down error, never with a quiet end", async () => {
    const slow = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "20" });
    let stopping: Promise<void> | undefined;
    try {
      const stream = await transportFor(slow.url, { max_tokens: 200 }).sendMessages({
        chatId: "shutdown",
        messages: [userMessage("the gateway goes away")],
        trigger: "submit-message",
        messageId: undefined,
        abortSignal: undefined,
      });
      const read = await readStream(stream, (chunk) => {
        if (chunk.type === "text-delta") stopping ??= slow.stop();
      });
      expect(read.chunks.at(-1)).toMatchObject({ type: "error", errorText: expect.stringMatching(/^shutting_down: /) });
      expect(read.errors).toEqual([expect.stringMatching(/^shutting_down: /)]);
    } finally {
      await (stopping ?? slow.stop());
    }
  });

  it("an Idempotency-Key seen before streams the same answer again from its start", async () => {
    const body = JSON.stringify({ id: "idem-chat", messages: [userMessage("once")], trigger: "submit-message", max_tokens: 6 });
    const headers = { "content-type": "application/json", "idempotency-key": "ai-sdk-idem-1" };
    const first = await fetch(`${node.url}${AI_SDK_API}`, { method: "POST", headers, body });
    const firstBody = await first.text();
    const again = await fetch(`${node.url}${AI_SDK_API}`, { method: "POST", headers, body });
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await again.text()).toBe(firstBody);
  });

  it("a client that stops reading (Chat.stop) does not cancel the answer: resumeStream replays it to the end", async () => {
    const slow = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "40" });
    try {
      const fields = { max_tokens: 120, seed: 4 };
      const chat = new Chat<UIMessage>({ id: "walk-away", transport: transportFor(slow.url, fields) });
      const sent = chat.sendMessage({ text: "keep going without me" });
      await until(() => textOf(chat.messages[1]).length > 0, 30_000, "the first text");
      await chat.stop();
      await sent;
      const partial = textOf(chat.messages[1]);
      const expected = simAnswerTo("keep going without me", fields);
      expect(partial.length).toBeLessThan(expected.length);
      await chat.resumeStream();
      expect(chat.status).toBe("ready");
      expect(chat.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
      expect(textOf(chat.messages[1])).toBe(expected);
    } finally {
      await slow.stop();
    }
  });
});

describe("the AI SDK door refuses what it cannot honour, each with its code", () => {
  let node: LifelineNode & { url: string };
  beforeAll(async () => {
    node = await startInProcess();
  });
  afterAll(async () => node.stop());

  const post = async (body: unknown, headers: Record<string, string> = { "content-type": "application/json" }) => {
    const response = await fetch(`${node.url}${AI_SDK_API}`, {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as { error: { code: string; details?: unknown } } };
  };
  const ok = { id: "c1", messages: [userMessage("hi")], trigger: "submit-message" };

  it.each([
    ["no messages", { ...ok, messages: [] }, 400, "invalid_request"],
    ["a message without parts", { ...ok, messages: [{ id: "m", role: "user" }] }, 400, "invalid_request"],
    ["an unknown role", { ...ok, messages: [{ id: "m", role: "tool", parts: [] }] }, 400, "invalid_request"],
    ["a text part without text", { ...ok, messages: [{ id: "m", role: "user", parts: [{ type: "text" }] }] }, 400, "invalid_request"],
    ["a body field the door does not know", { ...ok, tools: {} }, 400, "invalid_request"],
    ["an unknown trigger", { ...ok, trigger: "resume" }, 400, "invalid_request"],
    ["a bad max_tokens", { ...ok, max_tokens: 0 }, 400, "invalid_request"],
    ["no chat id", { messages: ok.messages }, 400, "invalid_request"],
    ["a chat id with a slash", { ...ok, id: "a/b" }, 400, "invalid_chat_id"],
    ["a chat id of ..", { ...ok, id: ".." }, 400, "invalid_chat_id"],
    ["an unknown model", { ...ok, model: "gpt-nothing" }, 400, "unknown_model"],
    [
      "a file part",
      { ...ok, messages: [{ id: "m", role: "user", parts: [{ type: "file", mediaType: "image/png", url: "data:," }] }] },
      400,
      "unsupported_message_part",
    ],
    [
      "a tool part",
      {
        ...ok,
        messages: [{ id: "m", role: "assistant", parts: [{ type: "tool-weather", toolCallId: "t", state: "input-available", input: {} }] }],
      },
      400,
      "unsupported_message_part",
    ],
  ])("%s", async (_name, body, status, code) => {
    const answer = await post(body);
    expect(answer.status).toBe(status);
    expect(answer.body.error.code).toBe(code);
  });

  it("a body that is not JSON, or not sent as JSON", async () => {
    expect((await post("{not json")).body.error.code).toBe("invalid_json");
    expect((await post(ok, { "content-type": "text/plain" })).body.error.code).toBe("unsupported_media_type");
  });

  it("a bad chat id on resume and stop, and a stop of a chat with no answer", async () => {
    const resume = await fetch(`${node.url}${AI_SDK_API}/${encodeURIComponent("bad id")}/stream`);
    expect(resume.status).toBe(400);
    expect(((await resume.json()) as { error: { code: string } }).error.code).toBe("invalid_chat_id");
    const stop = await fetch(`${node.url}${AI_SDK_API}/nobody/stop`, { method: "POST" });
    expect(stop.status).toBe(404);
    expect(((await stop.json()) as { error: { code: string } }).error.code).toBe("chat_not_found");
  });

  it("a stop after the answer completed is already_finished", async () => {
    const stream = await transportFor(node.url, { max_tokens: 2 }).sendMessages({
      chatId: "done-already",
      messages: [userMessage("quick")],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    await readStream(stream);
    const stop = await fetch(`${node.url}${AI_SDK_API}/done-already/stop`, { method: "POST" });
    expect(stop.status).toBe(409);
    expect(((await stop.json()) as { error: { code: string } }).error.code).toBe("already_finished");
  });

  it("a conversation maps to the model's messages: text parts joined, the UI's step-start and data parts left out", async () => {
    const messages: UIMessage[] = [
      {
        id: "s1",
        role: "system",
        parts: [
          { type: "text", text: "Be " },
          { type: "text", text: "brief." },
        ],
      },
      userMessage("first"),
      {
        id: "a1",
        role: "assistant",
        parts: [{ type: "step-start" }, { type: "text", text: "an answer", state: "done" }, { type: "data-note", data: { x: 1 } }],
      },
      userMessage("second", "u2"),
    ];
    const fields = { max_tokens: 12, seed: 2 };
    const stream = await transportFor(node.url, fields).sendMessages({
      chatId: "parts",
      messages,
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    const read = await readStream(stream);
    expect(read.errors).toEqual([]);
    const conversation = [
      { role: "system" as const, content: "Be brief." },
      { role: "user" as const, content: "first" },
      { role: "assistant" as const, content: "an answer" },
      { role: "user" as const, content: "second" },
    ];
    expect(textOf(read.message)).toBe(simText({ messages: conversation, ...fields }));
    expect(textOf(read.message)).not.toBe(simText({ messages: conversation.slice(1), ...fields })); // the system message counts
  });
});

describe("the AI SDK door across a gateway's graceful shutdown", () => {
  it("Chat resumes on another gateway when its stream ends with shutting_down, and ends with the uninterrupted text", async () => {
    const data = tempDir();
    const env = { LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path, LIFELINE_SIM_TOKENS_PER_SECOND: "30" };
    const leaving = await startInProcess(env);
    const staying = await startInProcess(env);
    try {
      // What a load balancer does: requests go to the gateway that is up.
      let target = leaving.url;
      const api = `${leaving.url}${AI_SDK_API}`;
      const fields = { max_tokens: 120, seed: 8 };
      const transport = new DefaultChatTransport<UIMessage>({
        api,
        body: fields,
        fetch: (input, init) => fetch(String(input).replace(leaving.url, target), init),
      });
      const resumed: Promise<void>[] = [];
      // The pattern docs/protocols/ai-sdk.md gives: on shutting_down or engine_unavailable, resume.
      const chat: Chat<UIMessage> = new Chat<UIMessage>({
        id: "graceful",
        transport,
        onError: (error) => {
          if (/^(shutting_down|engine_unavailable): /.test(error.message))
            resumed.push(new Promise((r) => setTimeout(r, 0)).then(() => chat.resumeStream()));
        },
      });
      const sent = chat.sendMessage({ text: "move along" });
      await until(() => textOf(chat.messages[1]).length > 0, 30_000, "the first text");
      target = staying.url;
      await leaving.stop(); // its stream ends with shutting_down; its worker hands the answer back
      await sent;
      await until(() => resumed.length > 0, 30_000, "the resume");
      await Promise.all(resumed);
      expect(chat.status).toBe("ready");
      expect(chat.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
      expect(textOf(chat.messages[1])).toBe(simAnswerTo("move along", fields));
    } finally {
      await leaving.stop().catch(() => undefined);
      await staying.stop();
      data.remove();
    }
  });
});
