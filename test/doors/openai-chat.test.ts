import OpenAI, { APIError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GENERATION_HEADER } from "../../src/gateway/doors/openai/wire.ts";
import { startInProcess } from "../support/in-process.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

/*
 * POST /v1/chat/completions through the official openai client, which changes only its baseURL:
 * what it parses is what OpenAI would send, each answer is an ordinary generation (the native API
 * reads the same one), and what Lifeline cannot honour is refused with a stable code.
 */

interface View {
  status: string;
  text: string;
}

describe("the OpenAI door's chat completions, through the official client", () => {
  let node: Awaited<ReturnType<typeof startInProcess>>;
  let client: OpenAI;
  /** Requests the client sent, counted at its fetch: retries included. */
  let sent = 0;
  const view = async (id: string): Promise<View> => (await (await fetch(`${node.url}/v1/generations/${id}`)).json()) as View;

  beforeAll(async () => {
    node = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "200" });
    const counted: typeof fetch = (input, init) => {
      sent += 1;
      return fetch(input, init);
    };
    client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "not-checked-on-loopback", fetch: counted, maxRetries: 2 });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("streams chat.completion.chunk frames the client parses: role first, the text, finish_reason, usage with no choices", async () => {
    const request = simRequest("a streamed chat completion", { max_tokens: 30, seed: 4 });
    const { data: stream, response } = await client.chat.completions
      .create({
        model: "sim",
        messages: [...request.messages],
        max_tokens: 30,
        seed: 4,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);

    const id = response.headers.get(GENERATION_HEADER);
    expect(id).toMatch(/^gen_/);
    expect(chunks.every((c) => c.id === id && c.object === "chat.completion.chunk" && c.model === "sim")).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    expect(withChoices.at(-1)!.choices[0]!.finish_reason).toBe("stop");
    expect(withChoices.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: 30 });
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(simText(request));
    // The same answer through the native API: it is an ordinary generation.
    expect(await view(id!)).toMatchObject({ status: "completed", text });
  });

  it("answers stream: false with one chat.completion once the answer is done", async () => {
    const request = simRequest("a waited-for chat completion", { max_tokens: 12 });
    const { data, response } = await client.chat.completions
      .create({
        model: "sim",
        messages: [{ role: "user", content: [{ type: "text", text: "a waited-for chat completion" }] }],
        max_completion_tokens: 12,
      })
      .withResponse();
    expect(data.id).toBe(response.headers.get(GENERATION_HEADER));
    expect(data.object).toBe("chat.completion");
    expect(data.choices[0]!.message.content).toBe(simText(request));
    expect(data.choices[0]!.finish_reason).toBe("stop");
    expect(data.usage).toMatchObject({ completion_tokens: 12 });
  });

  it("serves the SDK's chat.completions.stream() helper: its content events and its final completion", async () => {
    const request = simRequest("the chat stream helper", { max_tokens: 20 });
    const helper = client.chat.completions.stream({
      model: "sim",
      messages: [...request.messages],
      max_tokens: 20,
      stream_options: { include_usage: true },
    });
    const pieces: string[] = [];
    helper.on("content", (delta) => pieces.push(delta));
    const final = await helper.finalChatCompletion();
    expect(pieces.join("")).toBe(simText(request));
    expect(final.choices[0]!.message.content).toBe(simText(request));
    expect(final.choices[0]!.finish_reason).toBe("stop");
    expect(final.usage?.completion_tokens).toBe(20);
  });

  it("does not cancel the answer when the client goes away mid-stream: the native API reads it to its end", async () => {
    const request = simRequest("a client that walks away", { max_tokens: 120 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: "sim", messages: [...request.messages], max_tokens: 120, stream: true })
      .withResponse();
    let received = "";
    for await (const chunk of stream) {
      received += chunk.choices[0]?.delta.content ?? "";
      if (received.length > 10) break; // the client aborts its request
    }
    const id = response.headers.get(GENERATION_HEADER)!;
    await expect.poll(async () => (await view(id)).status, { timeout: 30_000, interval: 50 }).toBe("completed");
    const finished = await view(id);
    expect(finished.text).toBe(simText(request));
    expect(finished.text.startsWith(received)).toBe(true);
  });

  it("honours Idempotency-Key: the same key and body give the same generation, another body a 409 the client does not retry", async () => {
    const body = { model: "sim", messages: [{ role: "user" as const, content: "once only" }], max_tokens: 5 };
    const key = `chat-key-${Date.now()}`;
    const first = await client.chat.completions.create(body, { headers: { "Idempotency-Key": key } }).withResponse();
    const again = await client.chat.completions.create(body, { headers: { "Idempotency-Key": key } }).withResponse();
    expect(again.data.id).toBe(first.data.id);
    expect(again.response.headers.get("idempotent-replayed")).toBe("true");
    expect(again.data.choices[0]!.message.content).toBe(first.data.choices[0]!.message.content);

    const before = sent;
    const error = await client.chat.completions.create({ ...body, max_tokens: 6 }, { headers: { "Idempotency-Key": key } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(APIError);
    expect({ status: (error as APIError).status, code: (error as APIError).code }).toEqual({ status: 409, code: "idempotency_key_reused" });
    expect(sent - before).toBe(1); // x-should-retry: false
  });

  it("refuses what it cannot honour, each with its code, in the shape the client reads", async () => {
    const messages = [{ role: "user" as const, content: "refuse me" }];
    const refusals: [string, () => Promise<unknown>, string, string | null][] = [
      [
        "tools",
        () => client.chat.completions.create({ model: "sim", messages, tools: [{ type: "function", function: { name: "f" } }] }),
        "unsupported_parameter",
        "tools",
      ],
      ["n > 1", () => client.chat.completions.create({ model: "sim", messages, n: 2 }), "unsupported_parameter", "n"],
      [
        "an image part",
        () =>
          client.chat.completions.create({
            model: "sim",
            messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://example.com/a.png" } }] }],
          }),
        "unsupported_parameter",
        "messages.0.content.0.type",
      ],
      [
        "a tool message",
        () => client.chat.completions.create({ model: "sim", messages: [{ role: "tool", content: "42", tool_call_id: "c1" }] }),
        "unsupported_parameter",
        "messages.0.role",
      ],
      ["a stop sequence", () => client.chat.completions.create({ model: "sim", messages, stop: ["\n"] }), "unsupported_parameter", "stop"],
      ["an unknown model", () => client.chat.completions.create({ model: "gpt-nope", messages }), "unknown_model", null],
      ["no messages", () => client.chat.completions.create({ model: "sim", messages: [] }), "invalid_request", "messages"],
      ["max_tokens 0", () => client.chat.completions.create({ model: "sim", messages, max_tokens: 0 }), "invalid_request", "max_tokens"],
      ["a fractional seed", () => client.chat.completions.create({ model: "sim", messages, seed: 1.5 }), "invalid_request", "seed"],
    ];
    for (const [what, call, code, param] of refusals) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, what).toBeInstanceOf(APIError);
      const e = error as APIError;
      expect({ what, status: e.status, code: e.code, type: e.type, param: e.param }).toEqual({
        what,
        status: 400,
        code,
        type: "invalid_request_error",
        param,
      });
    }
  });

  it("refuses a body that is not JSON and a bad Idempotency-Key with Lifeline's codes", async () => {
    const url = `${node.url}/v1/chat/completions`;
    const notJson = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { code: string } }).error.code).toBe("invalid_json");
    const badKey = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": "" },
      body: JSON.stringify({ model: "sim", messages: [{ role: "user", content: "x" }] }),
    });
    expect(((await badKey.json()) as { error: { code: string } }).error.code).toBe("invalid_header");
  });
});
