import { writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { APIError } from "openai";
import type { ResponseStreamEvent } from "openai/resources/responses/responses";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode, type LifelineNode } from "../../src/cli/node.ts";
import type { Entry } from "../../src/core/entries.ts";
import { GENERATION_HEADER } from "../../src/gateway/doors/openai/wire.ts";
import { startSimLlm } from "../../src/sim-llm/server.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { simRequest, simText } from "../support/sim-answer.ts";
import { entriesOf, readEvents } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { never, until } from "../support/waits.ts";

/*
 * A door that can only append, when the answer's text moves back (decision 025): a model in
 * `restart` mode starts over after a failure, and the official client, which was shown the first
 * attempt's text, ends with the uninterrupted text all the same; a text written again differently
 * ends the stream with answer_diverged, never with a wrong text.
 */

describe("the OpenAI door when the answer's text moves back", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function lifeline(
    config: Record<string, unknown> | undefined,
    roles = { gateway: true, worker: true },
  ): Promise<LifelineNode & { url: string }> {
    const env: Record<string, string> = { LIFELINE_ENGINE: "memory", LIFELINE_PORT: "0", LIFELINE_LOG_LEVEL: "silent" };
    if (config) {
      const dir = tempDir();
      cleanups.push(() => dir.remove());
      env.LIFELINE_CONFIG = join(dir.path, "models.json");
      writeFileSync(env.LIFELINE_CONFIG, JSON.stringify(config));
    }
    const node = (await startNode(loadConfig(env, {}), roles)) as LifelineNode & { url: string };
    cleanups.push(() => node.stop());
    return node;
  }

  it("a model in restart mode that stalls mid-answer is rewound; the chat and Responses clients end with the uninterrupted text", async () => {
    // The first call stalls after 7 tokens until the idle timeout gives up on it; the next answers in full.
    const model = await startSimLlm({ tokensPerSecond: 100, fault: "stall", faultAfterTokens: 7, faultCount: 1 });
    cleanups.push(() => model.close());
    const node = await lifeline({
      providers: { flaky: { type: "openai-compatible", baseUrl: `${model.url}/v1` } },
      models: { restarting: { provider: "flaky", model: "sim", continuation: "restart" } },
      timeouts: { idleMs: 2000 },
      retry: { baseDelayMs: 50, maxDelayMs: 100 },
    });
    const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "not-checked-on-loopback" });
    const request = simRequest("an answer written twice", { max_tokens: 40, seed: 3 });
    const expected = simText(request);

    const { data: chat, response } = await client.chat.completions
      .create({ model: "restarting", messages: [...request.messages], max_tokens: 40, seed: 3, stream: true })
      .withResponse();
    const id = response.headers.get(GENERATION_HEADER)!;
    const events: ResponseStreamEvent[] = [];
    const readResponse = (async () => {
      for await (const event of await client.responses.retrieve(id, { stream: true })) events.push(event);
    })();
    let text = "";
    let rewoundBeforeFirstText: boolean | undefined;
    for await (const chunk of chat) {
      const content = chunk.choices[0]?.delta.content ?? "";
      if (content !== "" && rewoundBeforeFirstText === undefined) {
        // The client holds the first attempt's text while that attempt stalls: no rewind yet.
        const timeline = (await (await fetch(`${node.url}/v1/generations/${id}/timeline`)).json()) as { rewinds: number };
        rewoundBeforeFirstText = timeline.rewinds > 0;
      }
      text += content;
    }
    await readResponse;

    expect(rewoundBeforeFirstText).toBe(false);
    expect(text).toBe(expected);
    expect(events.map((e) => (e.type === "response.output_text.delta" ? e.delta : "")).join("")).toBe(expected);
    expect(events.at(-1)!.type).toBe("response.completed");
    const entries = entriesOf((await readEvents(node.url, id)).messages);
    expectExactAnswer(entries, expected);
    const rewinds = entries.filter((e): e is Extract<Entry, { type: "rewind" }> => e.type === "rewind");
    expect(rewinds.map((e) => e.toOffset)).toEqual([1]);
    const before = entries
      .filter((e) => e.type === "delta" && e.offset < rewinds[0]!.offset)
      .map((e) => (e.type === "delta" ? e.text : ""));
    expect(before.join("").length).toBeGreaterThan(0);
  });

  it("a text written again differently ends the chat stream with an APIError answer_diverged, and the response with response.failed", async () => {
    // A gateway alone; the test writes the log as a worker whose model restarted and wrote otherwise.
    const node = await lifeline(undefined, { gateway: true, worker: false });
    const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "not-checked-on-loopback" });
    const { data: chat, response } = await client.chat.completions
      .create({ model: "sim", messages: [{ role: "user", content: "say it twice" }], stream: true })
      .withResponse();
    const id = response.headers.get(GENERATION_HEADER)!;
    const claim = await node.engine.claim("hand", 60_000, never);
    expect(claim?.id).toBe(id);
    const fence = claim!.fence;
    await node.engine.append(id, fence, 2, [
      { type: "started", attempt: fence, worker: "hand", model: "sim" },
      { type: "delta", attempt: fence, text: "Hello" },
    ]);

    let shown = "";
    const outcome = (async () => {
      for await (const chunk of chat) shown += chunk.choices[0]?.delta.content ?? "";
    })().then(
      () => undefined,
      (error: unknown) => error,
    );
    await until(() => shown === "Hello", 30_000, "the first text shown");
    await node.engine.append(id, fence, 4, [
      { type: "rewind", attempt: fence, toOffset: 1 },
      { type: "delta", attempt: fence, text: "Help!" },
      { type: "completed", attempt: fence, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 2 } },
    ]);
    const error = await outcome;
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).code).toBe("answer_diverged");
    expect(shown).toBe("Hello");

    const events: ResponseStreamEvent[] = [];
    for await (const event of await client.responses.retrieve(id, { stream: true })) events.push(event);
    const last = events.at(-1)!;
    expect(last.type).toBe("response.failed");
    expect(last.type === "response.failed" && last.response.error?.code).toBe("answer_diverged");
    expect((await client.responses.retrieve(id)).status).toBe("failed");
  });
});
