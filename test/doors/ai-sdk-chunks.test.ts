import { describe, expect, it } from "vitest";
import { stampEntry, type Entry, type EntryBody } from "../../src/core/entries.ts";
import { UiChunkDerivation, type UiChunk } from "../../src/gateway/doors/ai-sdk/ui-chunks.ts";

const AT = "2026-11-30T00:00:00.000Z";

/** A log from its bodies: offsets 1, 2, 3 … */
function log(...bodies: EntryBody[]): Entry[] {
  return bodies.map((body, i) => stampEntry(body, i + 1, AT));
}

const created: EntryBody = { type: "created", attempt: 0, request: { model: "sim", messages: [{ role: "user", content: "q" }] } };
const started = (attempt = 1): EntryBody => ({ type: "started", attempt, worker: "w", model: "sim" });
const delta = (text: string, attempt = 1): EntryBody => ({ type: "delta", attempt, text });
const completed = (finishReason: string): EntryBody => ({
  type: "completed",
  attempt: 1,
  finishReason,
  usage: { promptTokens: 1, completionTokens: 1 },
});

function derive(entries: readonly Entry[]): UiChunk[] {
  const derivation = new UiChunkDerivation("gen_x");
  return entries.flatMap((entry) => derivation.apply(entry));
}

describe("the UI message chunks of a log", () => {
  it("an answer: start, start-step, one text part, finish-step, finish; a retry adds nothing", () => {
    const entries = log(
      created,
      started(),
      delta("Hel"),
      { type: "retrying", attempt: 1, error: { code: "model_timeout", message: "idle" }, delayMs: 5 },
      started(),
      delta("lo"),
      completed("stop"),
    );
    expect(derive(entries)).toEqual([
      { type: "start", messageId: "gen_x" },
      { type: "start-step" },
      { type: "text-start", id: "text" },
      { type: "text-delta", id: "text", delta: "Hel" },
      { type: "text-delta", id: "text", delta: "lo" },
      { type: "text-end", id: "text" },
      { type: "finish-step" },
      { type: "finish", finishReason: "stop" },
    ]);
  });

  it("is a pure function of the log: a replay derives the same chunks", () => {
    const entries = log(created, started(), delta("a"), delta("b"), completed("length"));
    expect(derive(entries)).toEqual(derive(entries));
  });

  it("maps finish reasons to the SDK's, and an unknown one to other", () => {
    const last = (reason: string) => derive(log(created, started(), completed(reason))).at(-1);
    expect(last("stop")).toEqual({ type: "finish", finishReason: "stop" });
    expect(last("length")).toEqual({ type: "finish", finishReason: "length" });
    expect(last("content_filter")).toEqual({ type: "finish", finishReason: "content-filter" });
    expect(last("tool_calls")).toEqual({ type: "finish", finishReason: "tool-calls" });
    expect(last("constructor")).toEqual({ type: "finish", finishReason: "other" });
  });

  it("a failed answer ends with an error chunk whose text begins with its code; a cancelled one with abort", () => {
    const failed = derive(
      log(created, started(), delta("x"), { type: "failed", attempt: 1, error: { code: "model_unavailable", message: "503" } }),
    );
    expect(failed.at(-1)).toEqual({ type: "error", errorText: "model_unavailable: 503" });
    const cancelled = derive(log(created, started(), { type: "cancelled", attempt: 1 }));
    expect(cancelled.at(-1)).toEqual({ type: "abort", reason: "cancelled" });
  });

  it("after a rewind, sends nothing until the text passes what was shown, and ends with answer_diverged when it differs", () => {
    const same = derive(
      log(
        created,
        started(),
        delta("Hello world"),
        { type: "rewind", attempt: 2, toOffset: 1 },
        delta("Hello", 2),
        delta(" world!", 2),
        completed("stop"),
      ),
    );
    expect(same.filter((c) => c.type === "text-delta")).toEqual([
      { type: "text-delta", id: "text", delta: "Hello world" },
      { type: "text-delta", id: "text", delta: "!" },
    ]);
    const other = derive(
      log(
        created,
        started(),
        delta("Hello"),
        { type: "rewind", attempt: 2, toOffset: 1 },
        delta("Bye", 2),
        delta(" now", 2),
        completed("stop"),
      ),
    );
    expect(other.at(-1)).toMatchObject({ type: "error", errorText: expect.stringMatching(/^answer_diverged: /) });
    expect(other.filter((c) => c.type === "error")).toHaveLength(1); // nothing after it, not even the end
  });

  it("after a reset the log is followed again from offset 1, and start is not sent twice", () => {
    const derivation = new UiChunkDerivation("gen_x");
    const first = log(created, started(), delta("Hi"));
    const chunks = first.flatMap((entry) => derivation.apply(entry));
    derivation.reset();
    const again = log(created, started(), delta("Hi there", 2), completed("stop"));
    const after = again.flatMap((entry) => derivation.apply(entry));
    expect(chunks.map((c) => c.type)).toEqual(["start", "start-step", "text-start", "text-delta"]);
    expect(after).toEqual([
      { type: "text-delta", id: "text", delta: " there" },
      { type: "text-end", id: "text" },
      { type: "finish-step" },
      { type: "finish", finishReason: "stop" },
    ]);
    expect(derivation.over).toBe(true);
  });
});
