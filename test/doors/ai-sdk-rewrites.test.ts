import { beforeEach, describe, expect, it } from "vitest";
import type { EntryBody } from "../../src/core/entries.ts";
import { readStream, textOf, transportFor, userMessage, type ReadStream } from "../support/ai-sdk-client.ts";
import { useGatewayOnRedis } from "../support/gateway-on-redis.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { never } from "../support/waits.ts";

beforeEach((ctx) => requireRedis(ctx));

const delta = (attempt: number, text: string): EntryBody => ({ type: "delta", attempt, text });
const started = (attempt: number): EntryBody => ({ type: "started", attempt, worker: `w${attempt}`, model: "sim" });
const completed = (attempt: number): EntryBody => ({
  type: "completed",
  attempt,
  finishReason: "stop",
  usage: { promptTokens: 1, completionTokens: 4 },
});

/**
 * The text of an answer moving back under a live UI message stream: the test is the worker (real
 * fenced appends on a real Redis) and the gateway serves the door, so each rewrite comes exactly
 * when the client has shown the text it takes back.
 */
describe("the AI SDK door when the answer's text moves back (decision 025)", () => {
  const redis = useGatewayOnRedis("aisdk");

  /**
   * Opens a chat's stream through the official transport and plays the worker: `script` gets the
   * generation (claimed, with `started` and `Hello`, ` world` written) once the client has shown
   * ` world`, and writes what follows.
   */
  async function play(chatId: string, script: (id: string, fence: number) => Promise<void>): Promise<ReadStream> {
    const stream = await transportFor(redis.get().node.url).sendMessages({
      chatId,
      messages: [userMessage(chatId)],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    const claim = await redis.get().engine.claim("w1", 60_000, never);
    if (!claim) throw new Error("no job to claim");
    await redis
      .get()
      .engine.append(claim.id, claim.fence, 2, [started(claim.fence), delta(claim.fence, "Hello"), delta(claim.fence, " world")]);
    let shown!: () => void;
    const worldShown = new Promise<void>((resolve) => (shown = resolve));
    const reading = readStream(stream, (chunk) => {
      if (chunk.type === "text-delta" && chunk.delta.endsWith("world")) shown();
    });
    await worldShown;
    await script(claim.id, claim.fence);
    return reading;
  }

  it("a rewind whose new text begins with what was shown: nothing is sent twice, and the text goes on", async () => {
    const read = await play("rewind-same", async (id, f) => {
      await redis
        .get()
        .engine.append(id, f, 5, [
          { type: "rewind", attempt: f, toOffset: 1 },
          delta(f, "Hello"),
          delta(f, " wor"),
          delta(f, "ld, again"),
          completed(f),
        ]);
    });
    expect(read.errors).toEqual([]);
    expect(read.chunks.at(-1)).toMatchObject({ type: "finish" });
    expect(textOf(read.message)).toBe("Hello world, again");
    expect(read.chunks.flatMap((c) => (c.type === "text-delta" ? [c.delta] : []))).toEqual(["Hello", " world", ", again"]);
  });

  it("a rewind whose new text differs from what was shown ends the stream with answer_diverged", async () => {
    const read = await play("rewind-other", async (id, f) => {
      await redis
        .get()
        .engine.append(id, f, 5, [{ type: "rewind", attempt: f, toOffset: 1 }, delta(f, "Goodbye"), delta(f, " for now"), completed(f)]);
    });
    expect(read.chunks.at(-1)).toMatchObject({ type: "error", errorText: expect.stringMatching(/^answer_diverged: /) });
    expect(read.errors).toEqual([expect.stringMatching(/^answer_diverged: /)]);
    expect(textOf(read.message)).toBe("Hello world"); // what was shown stays; nothing else is added
  });

  /** What a failover that lost the entries after offset 3 does, then a second attempt writes `entries` from there. */
  async function failOverAndRewrite(id: string, fence: number, entries: (attempt: number) => EntryBody[]): Promise<void> {
    await redis.get().loseEntriesAfter(id, 3);
    await redis.get().engine.release(id, fence);
    const second = await redis.get().engine.claim("w2", 60_000, never);
    if (second?.id !== id) throw new Error("the second attempt did not claim the answer");
    await redis.get().engine.append(id, second.fence, 4, [started(second.fence), ...entries(second.fence)]);
  }

  it("a Redis reset under the stream whose new text begins with what was shown: nothing is sent twice", async () => {
    const read = await play("reset-same", (id, f) =>
      failOverAndRewrite(id, f, (a) => [delta(a, " world"), delta(a, ", still"), completed(a)]),
    );
    expect(read.errors).toEqual([]);
    expect(textOf(read.message)).toBe("Hello world, still");
    expect(read.chunks.flatMap((c) => (c.type === "text-delta" ? [c.delta] : []))).toEqual(["Hello", " world", ", still"]);
  });

  it("a Redis reset under the stream whose new text differs ends the stream with answer_diverged", async () => {
    const read = await play("reset-other", (id, f) => failOverAndRewrite(id, f, (a) => [delta(a, " there, friend"), completed(a)]));
    expect(read.chunks.at(-1)).toMatchObject({ type: "error", errorText: expect.stringMatching(/^answer_diverged: /) });
    expect(textOf(read.message)).toBe("Hello world");
  });
});
