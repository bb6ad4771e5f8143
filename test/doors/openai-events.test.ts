import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stampEntry, type Entry, type EntryBody } from "../../src/core/entries.ts";
import { SseParser } from "../../src/core/wire.ts";
import { ChatChunks } from "../../src/gateway/doors/openai/chat-chunks.ts";
import { ResponseEvents, eventAfter, type ResponseEvent } from "../../src/gateway/doors/openai/response-events.ts";
import { ResponseFormat } from "../../src/gateway/doors/openai/response-format.ts";

const ID = "gen_0000000000000000000000test";
const AT = "2026-11-30T12:00:00.000Z";

/** A log from entry bodies: offsets 1, 2, 3 … */
function log(...bodies: EntryBody[]): Entry[] {
  return bodies.map((body, i) => stampEntry(body, i + 1, AT));
}

const created: EntryBody = { type: "created", attempt: 0, request: { model: "sim", messages: [{ role: "user", content: "q" }] } };
const started = (attempt: number): EntryBody => ({ type: "started", attempt, worker: "w", model: "sim" });
const delta = (text: string, attempt = 1): EntryBody => ({ type: "delta", attempt, text });
const completed = (attempt = 1): EntryBody => ({
  type: "completed",
  attempt,
  finishReason: "stop",
  usage: { promptTokens: 1, completionTokens: 2 },
});

function eventsOf(entries: readonly Entry[]): ResponseEvent[] {
  const events = new ResponseEvents(ID);
  return entries.flatMap((entry) => events.apply(entry));
}

/** The text an accumulating client holds after `events`. */
function textOf(events: readonly ResponseEvent[]): string {
  return events.map((e) => (e.type === "response.output_text.delta" ? (e.fields.delta as string) : "")).join("");
}

/** The chat chunks' data lines, parsed. */
function chunksOf(entries: readonly Entry[], includeUsage = false): unknown[] {
  const chunks = new ChatChunks(ID, includeUsage);
  const out: unknown[] = [];
  const parser = new SseParser((m) => out.push(m.data === "[DONE]" ? "[DONE]" : JSON.parse(m.data)));
  for (const entry of entries) parser.push(chunks.apply(entry));
  return out;
}

describe("the Responses events of a log", () => {
  it("are the events of a text answer, in order, with rising sequence numbers", () => {
    const events = eventsOf(log(created, started(1), delta("Hel"), delta("lo"), completed()));
    expect(events.map((e) => e.type)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const numbers = events.map((e) => e.sequence);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(new Set(numbers).size).toBe(numbers.length);
    expect(textOf(events)).toBe("Hello");
    const last = events.at(-1)!.fields.response as { status: string; output: { content: { text: string }[] }[] };
    expect(last.status).toBe("completed");
    expect(last.output[0]!.content[0]!.text).toBe("Hello");
  });

  it("are the same events, numbered the same, whoever derives them and however often", () => {
    const entries = log(created, started(1), delta("a"), started(2), delta("bc", 2), completed(2));
    expect(JSON.stringify(eventsOf(entries))).toBe(JSON.stringify(eventsOf(entries)));
  });

  it("give a client that resumes after any number the rest of the text, however the entries split it", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(40), { maxLength: 8 }),
        fc.array(fc.nat(40), { maxLength: 8 }),
        fc.nat(60),
        (text, cutsA, cutsB, pick) => {
          // Two logs of the same answer whose deltas split the text differently (a failover and a takeover).
          const split = (cuts: number[]): EntryBody[] => {
            const at = [...new Set([0, ...cuts.map((c) => c % text.length), text.length])].sort((a, b) => a - b);
            return at.slice(1).map((end, i) => delta(text.slice(at[i], end)));
          };
          const a = eventsOf(log(created, started(1), ...split(cutsA), completed()));
          const b = eventsOf(log(created, started(1), ...split(cutsB), completed()));
          // A client resumes after the number of the last event it got from the first log.
          const lastSeen = a[pick % a.length]!.sequence;
          const seen = a.filter((e) => e.sequence <= lastSeen);
          const rest = b.flatMap((e) => eventAfter(e, lastSeen) ?? []);
          expect(textOf(seen) + textOf(rest)).toBe(text);
          expect(rest.at(-1)?.type ?? seen.at(-1)?.type).toBe("response.completed");
        },
      ),
    );
  });

  it("send nothing while a restarted answer writes again what was shown, then only what is new", () => {
    const rewind: EntryBody = { type: "rewind", attempt: 2, toOffset: 1 };
    const events = eventsOf(
      log(created, started(1), delta("Hello"), started(2), rewind, delta("Hel", 2), delta("lo wor", 2), delta("ld", 2), completed(2)),
    );
    expect(textOf(events)).toBe("Hello world");
    expect(events.filter((e) => e.type === "response.output_text.delta").map((e) => e.fields.delta)).toEqual(["Hello", " wor", "ld"]);
  });

  it("end with response.failed answer_diverged when the restarted text differs from what was shown", () => {
    const rewind: EntryBody = { type: "rewind", attempt: 2, toOffset: 1 };
    const events = eventsOf(log(created, started(1), delta("Hello"), started(2), rewind, delta("Help", 2), delta("!", 2), completed(2)));
    expect(events.at(-1)!.type).toBe("response.failed");
    const response = events.at(-1)!.fields.response as { status: string; error: { code: string } };
    expect(response).toMatchObject({ status: "failed", error: { code: "answer_diverged" } });
    expect(textOf(events)).toBe("Hello");
  });

  it("end a cancelled answer with a terminal event the SDK knows, whose response says cancelled", () => {
    const events = eventsOf(log(created, started(1), delta("Hi"), { type: "cancelled", attempt: 1 }));
    expect(events.at(-1)!.type).toBe("response.incomplete");
    expect(events.at(-1)!.fields.response).toMatchObject({ status: "cancelled" });
  });
});

describe("the chat completion chunks of a log", () => {
  it("carry the role first, then the text, the finish reason, the usage with no choices, and [DONE]", () => {
    const out = chunksOf(log(created, started(1), delta("Hi"), delta(" there"), completed()), true) as Record<string, unknown>[];
    expect(out.at(-1)).toBe("[DONE]");
    const chunks = out.slice(0, -1);
    expect(chunks.every((c) => c.id === ID && c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks[0]).toMatchObject({ choices: [{ delta: { role: "assistant", content: "" }, finish_reason: null }], usage: null });
    expect(chunks.at(-2)).toMatchObject({ choices: [{ delta: {}, finish_reason: "stop" }] });
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } });
  });

  it("end with an in-stream error when a restarted answer ends shorter than what was shown", () => {
    const rewind: EntryBody = { type: "rewind", attempt: 2, toOffset: 1 };
    const out = chunksOf(log(created, started(1), delta("Hello"), started(2), rewind, delta("Hel", 2), completed(2)));
    expect(out.at(-1)).toMatchObject({ error: { code: "answer_diverged" } });
  });
});

describe("a door's stream when the log is replayed after a reset (a failover lost entries it had shown)", () => {
  // What the stream was given, then the log as it stands after the failover: "lo" was lost, and
  // the attempt that took over wrote the same text in other pieces.
  const before = log(created, started(1), delta("Hel"), delta("lo"));
  const after = log(created, started(1), delta("Hel"), started(2), delta("lo wo", 2), delta("rld", 2), completed(2));

  /** Frames parsed back into (sequence, type, data). */
  const parse = (frames: string): { id: string | undefined; event: string; data: Record<string, unknown> }[] => {
    const out: { id: string | undefined; event: string; data: Record<string, unknown> }[] = [];
    new SseParser((m) => out.push({ id: m.id, event: m.event, data: JSON.parse(m.data) as Record<string, unknown> })).push(frames);
    return out;
  };

  it("Responses: only what is new past what was shown, under the numbers a fresh resume computes from the log", () => {
    const live = new ResponseFormat(ID, -1);
    const shown = parse(before.map((e) => live.apply(e)).join(""));
    live.reset();
    const rest = parse(after.map((e) => live.apply(e)).join(""));
    const deltas = (frames: typeof shown): string =>
      frames.map((f) => (f.event === "response.output_text.delta" ? (f.data.delta as string) : "")).join("");
    expect(deltas(shown) + deltas(rest)).toBe("Hello world");
    expect(rest.map((f) => f.event)).not.toContain("response.created");
    // A client that resumes on another gateway, after the last number it got, is given the same frames.
    const lastSeen = Number(shown.at(-1)!.id);
    const resumed = new ResponseFormat(ID, lastSeen);
    expect(parse(after.map((e) => resumed.apply(e)).join(""))).toEqual(rest);
  });

  it("chat: no second role chunk, and the text goes on from what was shown", () => {
    const chunks = new ChatChunks(ID, false);
    const frames = before.map((e) => chunks.apply(e)).join("");
    chunks.reset();
    const rest = after.map((e) => chunks.apply(e)).join("");
    const content = (text: string): string[] =>
      parse(text).flatMap((f) =>
        (f.data.choices as { delta: { role?: string; content?: string } }[]).map((c) => c.delta.role ?? c.delta.content ?? ""),
      );
    expect(content(frames)).toEqual(["assistant", "Hel", "lo"]);
    expect(content(rest.replace("data: [DONE]\n\n", ""))).toEqual([" wo", "rld", ""]);
  });
});
