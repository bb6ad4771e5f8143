import { getEventListeners } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollTransport } from "../../src/client/poll-transport.ts";
import type { Entry } from "../../src/core/entries.ts";
import { startInProcess } from "../support/in-process.ts";
import { startGeneration } from "../support/sse-client.ts";
import { oneToN, simAsk } from "./support/follow-record.ts";

let node: Awaited<ReturnType<typeof startInProcess>>;
beforeAll(async () => {
  // One delta per token at 100 tokens/s: a long session of many short polls.
  node = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "100", LIFELINE_COALESCE_MS: "0" });
});
afterAll(async () => {
  await node.stop();
});

describe("the long-poll transport", () => {
  it("a session of hundreds of polls leaves no listener behind on its signal", async () => {
    const { request, expected } = simAsk("many polls", 200);
    const id = await startGeneration(node.url, request);
    const session = new AbortController();
    const entries: Entry[] = [];
    let polls = 0;
    let mostListeners = 0;
    const end = await pollTransport(node.url, fetch, 1000).session(
      id,
      undefined,
      {
        alive: () => {
          polls += 1;
          mostListeners = Math.max(mostListeners, getEventListeners(session.signal, "abort").length);
        },
        opened: () => undefined,
        entry: (entry) => entries.push(entry),
        reset: () => entries.splice(0),
      },
      session.signal,
    );
    expect(end).toEqual({ kind: "ended" });
    expect(entries.map((e) => e.offset)).toEqual(oneToN(entries.length));
    expect(entries.map((e) => (e.type === "delta" ? e.text : "")).join("")).toBe(expected);
    expect(polls).toBeGreaterThan(10); // a leak shows with any number; a loaded machine makes fewer, longer polls
    expect(mostListeners).toBeLessThanOrEqual(1); // the poll under way, and none of those before it
    expect(getEventListeners(session.signal, "abort")).toHaveLength(0);
  });
});
