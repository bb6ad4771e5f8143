import { describe, expect, it } from "vitest";
import { TextFold } from "../../src/core/fold.ts";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import { readLog } from "../../src/engine/read-log.ts";
import { projectGeneration } from "../../src/projections/summary.ts";
import { timelineOf } from "../../src/projections/timeline.ts";
import { writeEventfulLog } from "../support/eventful-log.ts";

describe("the timeline projection", () => {
  it("replays a log into its calls: a retry on a fallback model, a takeover, a rewind and the end", async () => {
    const engine = new MemoryEngine();
    const { id, text } = await writeEventfulLog(engine);
    const entries = await readLog(engine, id);
    const t = timelineOf(id, entries);

    expect(t).toMatchObject({
      id,
      status: "completed",
      requestedModel: "primary",
      lastOffset: 12,
      retries: 1,
      takeovers: 1,
      rewinds: 1,
      text,
      finishReason: "stop",
    });
    expect(t.durationMs).toBeGreaterThanOrEqual(0);
    expect(t.attempts.map((a) => [a.index, a.fence, a.worker, a.model, a.endedBy, a.deltas, a.chars, a.continuedFrom])).toEqual([
      [1, 1, "worker-a", "primary", "retrying", 2, 11, 0],
      [2, 1, "worker-a", "fallback", "takeover", 1, 5, 11],
      [3, 2, "worker-b", "fallback", "completed", 2, 9, 16],
    ]);
    expect(t.attempts[0]?.error).toEqual({ code: "model_timeout", message: "no token for 2000 ms" });
    expect(t.attempts[0]?.retryDelayMs).toBe(250);
    expect(t.attempts[2]?.firstDeltaMs).toBeGreaterThanOrEqual(0);
    // Consecutive deltas of one attempt are one step; everything else is a step of its own.
    expect(t.steps.map((s) => [s.fromOffset, s.toOffset, s.type, s.textLength])).toEqual([
      [1, 1, "created", 0],
      [2, 2, "started", 0],
      [3, 4, "delta", 11],
      [5, 5, "retrying", 11],
      [6, 6, "started", 11],
      [7, 7, "delta", 16],
      [8, 8, "started", 16],
      [9, 9, "rewind", 11],
      [10, 11, "delta", 20],
      [12, 12, "completed", 20],
    ]);
    expect(t.steps.find((s) => s.type === "started" && s.fromOffset === 8)?.summary).toMatch(/took over from worker-a \(fence 1 → 2\)/);
    expect(t.steps.find((s) => s.type === "rewind")?.summary).toBe("rewound to entry 4: 16 → 11 chars");
  });

  it("replayed up to any offset, it is the answer as it stood then", async () => {
    const engine = new MemoryEngine();
    const { id } = await writeEventfulLog(engine);
    const entries = await readLog(engine, id);
    const fold = new TextFold();
    for (const entry of entries) {
      fold.apply(entry);
      const t = timelineOf(id, entries, entry.offset);
      expect(t.lastOffset).toBe(entry.offset);
      expect(t.text).toBe(fold.text);
      expect(t.durationMs === undefined).toBe(entry.offset < entries.length);
    }
    const early = timelineOf(id, entries, 7);
    expect(early.status).toBe("running");
    expect(early.attempts.at(-1)?.endedBy).toBe("running");
    expect(early.takeovers).toBe(0);
  });

  it("a log that failed or was cancelled ends its last call with that", async () => {
    const engine = new MemoryEngine();
    const { id } = await engine.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    const claim = await engine.claim("w", 60_000, new AbortController().signal);
    await engine.append(id, claim!.fence, 2, [
      { type: "started", attempt: claim!.fence, worker: "w", model: "m" },
      { type: "failed", attempt: claim!.fence, error: { code: "model_error", message: "boom" } },
    ]);
    const t = timelineOf(id, await readLog(engine, id));
    expect(t.status).toBe("failed");
    expect(t.error).toEqual({ code: "model_error", message: "boom" });
    expect(t.attempts.map((a) => [a.endedBy, a.error?.code])).toEqual([["failed", "model_error"]]);
    expect(t.attempts[0]?.firstDeltaMs).toBeUndefined();
  });

  it("a worker lost while it waited to retry counts as a takeover too", async () => {
    const engine = new MemoryEngine();
    const { id } = await engine.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    const first = await engine.claim("w1", 60_000, new AbortController().signal);
    await engine.append(id, first!.fence, 2, [
      { type: "started", attempt: first!.fence, worker: "w1", model: "m" },
      { type: "retrying", attempt: first!.fence, error: { code: "model_timeout", message: "slow" }, delayMs: 1000 },
    ]);
    await engine.release(id, first!.fence); // w1 is gone before its next call
    const second = await engine.claim("w2", 60_000, new AbortController().signal);
    await engine.append(id, second!.fence, 4, [
      { type: "started", attempt: second!.fence, worker: "w2", model: "m" },
      { type: "completed", attempt: second!.fence, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 0 } },
    ]);
    const t = timelineOf(id, await readLog(engine, id));
    expect([t.retries, t.takeovers]).toEqual([1, 1]);
    expect(t.attempts.map((a) => [a.worker, a.endedBy])).toEqual([
      ["w1", "retrying"],
      ["w2", "completed"],
    ]);
    expect(t.steps.find((s) => s.fromOffset === 4)?.summary).toMatch(/took over from w1/);
  });

  it("an answer whose last entry is a retry is quiet until the wait it announced ends, not stuck before", async () => {
    const engine = new MemoryEngine();
    const { id } = await engine.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    const claim = await engine.claim("w1", 60_000, new AbortController().signal);
    await engine.append(id, claim!.fence, 2, [
      { type: "started", attempt: claim!.fence, worker: "w1", model: "m" },
      { type: "retrying", attempt: claim!.fence, error: { code: "model_unavailable", message: "(circuit open)" }, delayMs: 30_000 },
    ]);
    const log = await readLog(engine, id);
    const at = Date.parse(log.at(-1)!.at);
    expect(Date.parse(projectGeneration(id, log).lastEntryAt)).toBe(at + 30_000);
    expect(projectGeneration(id, log.slice(0, 2)).lastEntryAt).toBe(log[1]!.at); // any other entry: its own time
  });
});
