import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Chat } from "@ai-sdk/react";
import type { UIMessage } from "ai";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode, type LifelineNode } from "../../src/cli/node.ts";
import { readLog } from "../../src/engine/read-log.ts";
import type { Entry } from "../../src/core/entries.ts";
import { startSimLlm, type SimLlm, type SimLlmOptions } from "../../src/sim-llm/server.ts";
import { readStream, simAnswerTo, textOf, transportFor, userMessage } from "../support/ai-sdk-client.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { tempDir } from "../support/temp-dir.ts";

const FIELDS = { max_tokens: 40, seed: 5 } as const;

describe("the AI SDK door when the model fails, against sim-llm", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function simLlm(options: SimLlmOptions): Promise<SimLlm> {
    const server = await startSimLlm({ tokensPerSecond: 100, ...options });
    cleanups.push(() => server.close());
    return server;
  }

  /** A node whose one model, `main`, is served by `upstream` with `model` settings (its first model: the door's default). */
  async function lifeline(upstream: SimLlm, model: Record<string, unknown> = {}): Promise<LifelineNode & { url: string }> {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const file = join(dir.path, "models.json");
    writeFileSync(
      file,
      JSON.stringify({
        providers: { upstream: { type: "openai-compatible", baseUrl: `${upstream.url}/v1` } },
        models: { main: { provider: "upstream", model: "sim", ...model } },
        retry: { baseDelayMs: 50, maxDelayMs: 200 },
      }),
    );
    const config = loadConfig({ LIFELINE_ENGINE: "memory", LIFELINE_PORT: "0", LIFELINE_LOG_LEVEL: "silent", LIFELINE_CONFIG: file }, {});
    const node = (await startNode(config, { gateway: true, worker: true })) as LifelineNode & { url: string };
    cleanups.push(() => node.stop());
    return node;
  }

  it("a model in restart mode rewinds after a cut: the stream sends nothing twice and ends with the uninterrupted text", async () => {
    const upstream = await simLlm({ fault: "cut", faultAfterTokens: 12, faultCount: 1 });
    const node = await lifeline(upstream, { continuation: "restart" });
    const expected = simAnswerTo("start over", FIELDS);
    const stream = await transportFor(node.url, FIELDS).sendMessages({
      chatId: "rewound",
      messages: [userMessage("start over")],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    const read = await readStream(stream);
    expect(read.failure).toBeUndefined();
    expect(read.errors).toEqual([]);
    expect(textOf(read.message)).toBe(expected);
    // Every text-delta appended to the one text part: their sum is the text, so nothing was sent twice.
    const deltas = read.chunks.flatMap((c) => (c.type === "text-delta" ? [c.delta] : []));
    expect(deltas.join("")).toBe(expected);
    expect(read.chunks.filter((c) => c.type === "text-start")).toHaveLength(1);

    // The log really rewound after text the stream had shown (the stream replays the log in order).
    const id = read.message!.id;
    const entries: Entry[] = await readLog(node.engine, id);
    expectExactAnswer(entries, expected);
    const rewind = entries.findIndex((e) => e.type === "rewind");
    expect(rewind).toBeGreaterThan(0);
    expect(entries.slice(0, rewind).some((e) => e.type === "delta")).toBe(true);
  });

  it("a model that fails for good ends the stream with an error chunk naming the code, and Chat shows it", async () => {
    const upstream = await simLlm({ fault: "error", faultStatus: 400 });
    const node = await lifeline(upstream);
    const stream = await transportFor(node.url, FIELDS).sendMessages({
      chatId: "refused",
      messages: [userMessage("no way")],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    const read = await readStream(stream);
    expect(read.chunks.at(-1)).toMatchObject({ type: "error", errorText: expect.stringMatching(/^model_rejected: /) });
    expect(read.errors).toEqual([expect.stringMatching(/^model_rejected: /)]);

    const chat = new Chat<UIMessage>({ id: "refused-chat", transport: transportFor(node.url, FIELDS) });
    await chat.sendMessage({ text: "still no" });
    expect(chat.status).toBe("error");
    expect(chat.error?.message).toMatch(/^model_rejected: /);
  });
});
