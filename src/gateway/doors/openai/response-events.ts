import { AppendOnlyText } from "../../../core/append-only-text.ts";
import type { Entry, ErrorInfo, GenerationRequest, Usage } from "../../../core/entries.ts";
import { ERROR_CODES } from "../../../core/errors.ts";
import { encodeSseFrame } from "../../../core/wire.ts";
import { unixSeconds } from "./chat-chunks.ts";

/** A response's status as the Responses API names it. */
export type ResponseStatus = "queued" | "in_progress" | "completed" | "failed" | "cancelled" | "incomplete";

/**
 * One event of a response's stream. `sequence` is a pure function of the log, the same on every
 * gateway after any takeover (decision 028): events before the text have 0 to 3, a text delta has
 * 3 plus the length of the text shown once it is applied (`from` is 3 plus the length before it), and
 * the events after the text follow the length of the whole text.
 */
export interface ResponseEvent {
  readonly sequence: number;
  readonly type: string;
  /** For an `output_text.delta`: the sequence just before its first character. */
  readonly from?: number;
  /** The event's fields other than `type` and `sequence_number`. */
  readonly fields: Readonly<Record<string, unknown>>;
}

const CREATED = 0;
const IN_PROGRESS = 1;
const ITEM_ADDED = 2;
/** The `content_part.added` event; a delta's sequence is this plus the text's length after it. */
const PART_ADDED = 3;

/** Finish reasons after which a response is `incomplete`, with OpenAI's reason. */
const INCOMPLETE_REASONS: Readonly<Record<string, string>> = {
  length: "max_output_tokens",
  "content-filter": "content_filter",
};

/**
 * A generation's log as a response of the Responses API: its events, in order, and its state
 * after them (what `GET /v1/responses/{id}` answers). Entries are applied in offset order; after a
 * `reset` the log is applied again from offset 1 and the events it gives again carry the numbers
 * they had (the text goes through {@link AppendOnlyText}, which keeps what was shown).
 *
 * Text answers only: one `message` output item with one `output_text` part. No I/O: every gateway
 * derives the same events from the same entries.
 */
export class ResponseEvents {
  readonly #id: string;
  readonly #itemId: string;
  readonly #text = new AppendOnlyText();
  #request: GenerationRequest | undefined;
  #createdAt = 0;
  #status: ResponseStatus = "queued";
  #itemOpen = false;
  #error: ErrorInfo | null = null;
  #incompleteReason: string | null = null;
  #usage: Usage | undefined;
  #completedAt: number | null = null;
  #over = false;

  constructor(id: string) {
    this.#id = id;
    this.#itemId = `msg_${id.replace(/^gen_/, "")}`;
  }

  /** The terminal event was given (or the text diverged): nothing follows. */
  get over(): boolean {
    return this.#over;
  }

  get status(): ResponseStatus {
    return this.#status;
  }

  /** The events one entry adds (possibly none). */
  apply(entry: Entry): ResponseEvent[] {
    if (this.#over) return [];
    const step = this.#text.apply(entry);
    if (step.kind === "diverged") return [this.#diverged()];
    switch (entry.type) {
      case "created":
        this.#request = entry.request;
        this.#createdAt = unixSeconds(entry.at);
        return [this.#lifecycle(CREATED, "response.created")];
      case "started":
        return this.#start();
      case "delta": {
        if (step.text === "") return [];
        const shown = this.#text.shown.length;
        return [
          ...this.#start(), // none: a worker writes `started` before any text
          {
            sequence: PART_ADDED + shown,
            from: PART_ADDED + shown - step.text.length,
            type: "response.output_text.delta",
            fields: { item_id: this.#itemId, output_index: 0, content_index: 0, delta: step.text, logprobs: [] },
          },
        ];
      }
      case "completed":
        if (this.#text.text !== this.#text.shown) return [this.#diverged()];
        return this.#completed(entry.finishReason, entry.usage, entry.at);
      case "failed":
        this.#error = entry.error;
        return [this.#end("failed", "response.failed")];
      case "cancelled":
        // The SDK's stream helper knows no `response.cancelled` event: a terminal event it knows,
        // whose response says `cancelled` (decision 028).
        return [this.#end("cancelled", "response.incomplete")];
      default:
        return [];
    }
  }

  /** The log follows again from offset 1 (a `reset`): what was shown stays, and so do the numbers. */
  reset(): void {
    this.#text.reset();
  }

  /** The response object as of the entries applied. */
  response(): Record<string, unknown> {
    const request = this.#request;
    const item = this.#itemOpen ? [this.#item(this.#itemStatus(), true)] : [];
    return {
      id: this.#id,
      object: "response",
      created_at: this.#createdAt,
      status: this.#status,
      background: true,
      completed_at: this.#completedAt,
      error: this.#error === null ? null : { code: this.#error.code, message: this.#error.message },
      incomplete_details: this.#incompleteReason === null ? null : { reason: this.#incompleteReason },
      instructions: null,
      max_output_tokens: request?.max_tokens ?? null,
      metadata: request?.metadata ?? {},
      model: request?.model ?? "",
      output: item,
      parallel_tool_calls: false,
      previous_response_id: null,
      reasoning: null,
      store: true,
      temperature: request?.temperature ?? null,
      text: { format: { type: "text" } },
      tool_choice: "none",
      tools: [],
      top_p: null,
      truncation: "disabled",
      usage: this.#usage === undefined ? null : responseUsage(this.#usage),
    };
  }

  /** The first attempt began: `in_progress`, then the message item and its text part, each once. */
  #start(): ResponseEvent[] {
    if (this.#status !== "queued") return [];
    this.#status = "in_progress";
    const inProgress = this.#lifecycle(IN_PROGRESS, "response.in_progress"); // no output yet
    this.#itemOpen = true;
    return [
      inProgress,
      { sequence: ITEM_ADDED, type: "response.output_item.added", fields: { output_index: 0, item: this.#item("in_progress", false) } },
      {
        sequence: PART_ADDED,
        type: "response.content_part.added",
        fields: { item_id: this.#itemId, output_index: 0, content_index: 0, part: textPart("") },
      },
    ];
  }

  #completed(finishReason: string, usage: Usage, at: string): ResponseEvent[] {
    const length = this.#text.shown.length;
    const reason = Object.hasOwn(INCOMPLETE_REASONS, finishReason) ? INCOMPLETE_REASONS[finishReason]! : null;
    this.#usage = usage;
    this.#incompleteReason = reason;
    this.#completedAt = unixSeconds(at);
    const text = this.#text.shown;
    const itemStatus = reason === null ? "completed" : "incomplete";
    const place = { item_id: this.#itemId, output_index: 0, content_index: 0 };
    const events = this.#start(); // none: a worker writes `started` before `completed`
    this.#status = reason === null ? "completed" : "incomplete";
    events.push(
      { sequence: PART_ADDED + length + 1, type: "response.output_text.done", fields: { ...place, text, logprobs: [] } },
      { sequence: PART_ADDED + length + 2, type: "response.content_part.done", fields: { ...place, part: textPart(text) } },
      {
        sequence: PART_ADDED + length + 3,
        type: "response.output_item.done",
        fields: { output_index: 0, item: this.#item(itemStatus, true) },
      },
    );
    this.#over = true;
    events.push({
      sequence: PART_ADDED + length + 4,
      type: reason === null ? "response.completed" : "response.incomplete",
      fields: { response: this.response() },
    });
    return events;
  }

  #diverged(): ResponseEvent {
    this.#error = { code: "answer_diverged", message: `${ERROR_CODES.answer_diverged.message} Generation ${this.#id}.` };
    return this.#end("failed", "response.failed");
  }

  /** A terminal event right after the text shown so far. */
  #end(status: ResponseStatus, type: string): ResponseEvent {
    this.#status = status;
    this.#over = true;
    return { sequence: PART_ADDED + this.#text.shown.length + 1, type, fields: { response: this.response() } };
  }

  #lifecycle(sequence: number, type: string): ResponseEvent {
    return { sequence, type, fields: { response: this.response() } };
  }

  #itemStatus(): string {
    if (this.#status === "completed") return "completed";
    if (this.#status === "in_progress" || this.#status === "queued") return "in_progress";
    return "incomplete";
  }

  #item(status: string, withText: boolean): Record<string, unknown> {
    return {
      id: this.#itemId,
      type: "message",
      role: "assistant",
      status,
      content: withText ? [textPart(this.#text.shown)] : [],
    };
  }
}

function textPart(text: string): Record<string, unknown> {
  return { type: "output_text", text, annotations: [], logprobs: [] };
}

function responseUsage(usage: Usage): Record<string, unknown> {
  return {
    input_tokens: usage.promptTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: usage.completionTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

/**
 * The part of `event` a client that has seen everything up to `after` has not: the whole event,
 * the end of a text delta that began before `after` (a resume after a failover that joined or split
 * the entries differently), or nothing.
 */
export function eventAfter(event: ResponseEvent, after: number): ResponseEvent | undefined {
  if (event.sequence <= after) return undefined;
  if (event.from === undefined || event.from >= after) return event;
  const delta = event.fields.delta as string;
  return { ...event, from: after, fields: { ...event.fields, delta: delta.slice(after - event.from) } };
}

/** An event as the Responses API frames it: `event: <type>`, `data: {type, sequence_number, …}`, with its number as the SSE id. */
export function responseEventFrame(event: ResponseEvent): string {
  const data = JSON.stringify({ type: event.type, sequence_number: event.sequence, ...event.fields });
  return encodeSseFrame({ id: String(event.sequence), event: event.type, data });
}
