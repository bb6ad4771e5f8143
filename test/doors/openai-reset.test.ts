import OpenAI from "openai";
import type { ResponseStreamEvent } from "openai/resources/responses/responses";
import { beforeEach, describe, expect, it } from "vitest";
import { GENERATION_HEADER } from "../../src/gateway/doors/openai/wire.ts";
import { useGatewayOnRedis } from "../support/gateway-on-redis.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { never, until } from "../support/waits.ts";

beforeEach((ctx) => requireRedis(ctx));

const delta = (attempt: number, text: string) => ({ type: "delta" as const, attempt, text });

/*
 * A Redis failover that loses entries the OpenAI door's clients were shown: the gateway's follow
 * of the log sees another attempt's entry where it stood, and replays the log from offset 1 (a
 * `reset`). The door's streams, which can only append, send nothing until the text passes what
 * they showed, then only what is new: the official client ends with the whole text, once.
 */
describe("the OpenAI door across a reset of the log", () => {
  const redis = useGatewayOnRedis("oai");

  it("a chat stream and a Responses stream end with the whole text once; a resume after the reset goes on from its number", async () => {
    const e = redis.get().engine;
    const client = new OpenAI({ baseURL: `${redis.get().node.url}/v1`, apiKey: "not-checked-on-loopback" });
    const { data: chat, response } = await client.chat.completions
      .create({ model: "sim", messages: [{ role: "user", content: "across a failover" }], stream: true })
      .withResponse();
    const id = response.headers.get(GENERATION_HEADER)!;
    const first = await e.claim("w1", 60_000, never);
    expect(first?.id).toBe(id);
    await e.append(id, first!.fence, 2, [
      { type: "started", attempt: first!.fence, worker: "w1", model: "sim" },
      delta(first!.fence, "Hel"),
    ]);
    await e.append(id, first!.fence, 4, [delta(first!.fence, "lo"), delta(first!.fence, " wor")]);

    let chatText = "";
    const chatDone = (async () => {
      for await (const chunk of chat) chatText += chunk.choices[0]?.delta.content ?? "";
    })();
    const events: ResponseStreamEvent[] = [];
    const responseDone = (async () => {
      for await (const event of await client.responses.retrieve(id, { stream: true })) events.push(event);
    })();
    const deltas = (list: readonly ResponseStreamEvent[]): string =>
      list.map((x) => (x.type === "response.output_text.delta" ? x.delta : "")).join("");
    await until(() => chatText === "Hello wor" && deltas(events) === "Hello wor", 30_000, "both clients shown the first attempt's text");
    const lastSeen = events.at(-1)!.sequence_number;

    // What a failover that lost entries 4 and 5 leaves; another attempt writes the same text in other pieces.
    await redis.get().loseEntriesAfter(id, 3);
    await e.release(id, first!.fence);
    const second = await e.claim("w2", 60_000, never);
    const fence = second!.fence;
    await e.append(id, fence, 4, [
      { type: "started", attempt: fence, worker: "w2", model: "sim" },
      delta(fence, "lo wo"),
      delta(fence, "rld"),
      { type: "completed", attempt: fence, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 3 } },
    ]);
    await Promise.all([chatDone, responseDone]);

    // Both streams were replayed from offset 1 by the gateway (a reset each), not merely continued.
    const metrics = await (await fetch(`${redis.get().node.url}/metrics`)).text();
    expect(Number(/^lifeline_resets_total (\d+)/m.exec(metrics)?.[1])).toBe(2);
    expect(chatText).toBe("Hello world");
    expect(deltas(events)).toBe("Hello world");
    expect(events.at(-1)!.type).toBe("response.completed");
    const numbers = events.map((x) => x.sequence_number);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    // A client cut off before the failover resumes after its last number, and gets the rest once.
    const rest: ResponseStreamEvent[] = [];
    for await (const event of await client.responses.retrieve(id, { stream: true, starting_after: lastSeen })) rest.push(event);
    expect("Hello wor" + deltas(rest)).toBe("Hello world");
    expect(rest).toEqual(events.filter((x) => x.sequence_number > lastSeen));
  });
});
