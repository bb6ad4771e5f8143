import { AppendOnlyText, type AppendStep } from "../../../core/append-only-text.ts";
import type { Entry } from "../../../core/entries.ts";
import { ERROR_CODES } from "../../../core/errors.ts";

/**
 * The chunks of the AI SDK's UI message stream (`ai` 6, `uiMessageChunkSchema`) that this door
 * sends: one assistant message with one step and one text part.
 */
export type UiChunk =
  | { readonly type: "start"; readonly messageId: string }
  | { readonly type: "start-step" }
  | { readonly type: "text-start"; readonly id: string }
  | { readonly type: "text-delta"; readonly id: string; readonly delta: string }
  | { readonly type: "text-end"; readonly id: string }
  | { readonly type: "finish-step" }
  | { readonly type: "finish"; readonly finishReason: UiFinishReason }
  | { readonly type: "error"; readonly errorText: string }
  | { readonly type: "abort"; readonly reason: string };

/** The finish reasons the AI SDK's `finish` chunk accepts. */
export type UiFinishReason = "stop" | "length" | "content-filter" | "tool-calls" | "error" | "other";

/** The id of the one text part of every answer: the same on every replay. */
export const TEXT_PART_ID = "text";

const FINISH_REASONS: Readonly<Record<string, UiFinishReason>> = {
  stop: "stop",
  length: "length",
  content_filter: "content-filter",
  "content-filter": "content-filter",
  tool_calls: "tool-calls",
  "tool-calls": "tool-calls",
};

/** The SDK's finish reason for Lifeline's; one it does not know (even one named like an Object property) is `other`. */
function finishReasonOf(reason: string): UiFinishReason {
  return Object.hasOwn(FINISH_REASONS, reason) ? FINISH_REASONS[reason]! : "other";
}

/** `errorText` of an `error` chunk: the stable code first, so a client can branch on it (`code: words`). */
export function errorTextOf(code: string, message: string): string {
  return `${code}: ${message}`;
}

const NONE: readonly UiChunk[] = [];

/**
 * The UI message stream of one answer, derived from its log entry by entry: a pure function of the
 * entries given, so every gateway, on every replay (a resume replays from `start`), sends the same
 * chunks for the same log.
 *
 * `created` gives `start` (its `messageId` is the generation id), the first `started` gives
 * `start-step`, text gives `text-start` once and then `text-delta`s, `completed` closes the part and
 * the step and gives `finish`, `failed` gives `error` (its `errorText` begins with the entry's
 * code), `cancelled` gives `abort`. The text goes through {@link AppendOnlyText}: after a `rewind`
 * or a `reset` nothing is sent while the text is behind what was shown, and when it no longer
 * begins with what was shown the answer ends with an `answer_diverged` error (decision 025).
 * After the last chunk of an answer, nothing more is derived.
 */
export class UiChunkDerivation {
  readonly #messageId: string;
  readonly #text = new AppendOnlyText();
  #started = false;
  #stepOpen = false;
  #textOpen = false;
  #over = false;

  constructor(generationId: string) {
    this.#messageId = generationId;
  }

  /** True once the answer's last chunk was derived (its end, or a divergence): the stream ends. */
  get over(): boolean {
    return this.#over;
  }

  /** The chunks `entry` adds, in order (often none). Entries come in offset order. */
  apply(entry: Entry): readonly UiChunk[] {
    if (this.#over) return NONE;
    // Every entry goes through the text view, which follows the log's offsets.
    const step = this.#text.apply(entry);
    switch (entry.type) {
      case "created":
        return this.#start();
      case "started":
        return [...this.#start(), ...this.#openStep()];
      case "retrying":
        return NONE;
      case "delta":
      case "rewind":
        return this.#textOf(step);
      case "completed":
        this.#over = true;
        return [...this.#closeStep(), { type: "finish", finishReason: finishReasonOf(entry.finishReason) }];
      case "failed":
        this.#over = true;
        return [{ type: "error", errorText: errorTextOf(entry.error.code, entry.error.message) }];
      case "cancelled":
        this.#over = true;
        return [{ type: "abort", reason: "cancelled" }];
    }
  }

  /** The log is replayed from offset 1 (the engine lost entries in a failover): the text starts over, what was shown stays. */
  reset(): void {
    this.#text.reset();
  }

  #textOf(step: AppendStep): readonly UiChunk[] {
    if (step.kind === "diverged") {
      this.#over = true;
      return [{ type: "error", errorText: errorTextOf("answer_diverged", ERROR_CODES.answer_diverged.message) }];
    }
    if (step.text === "") return NONE;
    const opening = this.#textOpen ? NONE : [...this.#start(), ...this.#openStep(), this.#openText()];
    return [...opening, { type: "text-delta", id: TEXT_PART_ID, delta: step.text }];
  }

  #start(): readonly UiChunk[] {
    if (this.#started) return NONE;
    this.#started = true;
    return [{ type: "start", messageId: this.#messageId }];
  }

  #openStep(): readonly UiChunk[] {
    if (this.#stepOpen) return NONE;
    this.#stepOpen = true;
    return [{ type: "start-step" }];
  }

  #openText(): UiChunk {
    this.#textOpen = true;
    return { type: "text-start", id: TEXT_PART_ID };
  }

  #closeStep(): readonly UiChunk[] {
    const chunks: UiChunk[] = [];
    if (this.#textOpen) chunks.push({ type: "text-end", id: TEXT_PART_ID });
    this.#textOpen = false;
    if (this.#stepOpen) chunks.push({ type: "finish-step" });
    this.#stepOpen = false;
    return chunks;
  }
}

/** One chunk as the SDK's `JsonToSseTransformStream` writes it: `data: <JSON>` and a blank line. */
export function encodeUiChunk(chunk: UiChunk): string {
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** The frame that ends every UI message stream. */
export const UI_STREAM_DONE = "data: [DONE]\n\n";
