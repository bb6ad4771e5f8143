import { AppendOnlyText } from "../../../core/append-only-text.ts";
import type { Entry, ErrorInfo, Usage } from "../../../core/entries.ts";
import { ERROR_CODES } from "../../../core/errors.ts";
import type { GenerationView } from "../../../core/fold.ts";
import { routes } from "../../../core/routes.ts";
import { encodeSseFrame } from "../../../core/wire.ts";
import type { LogFormat } from "../door-stream.ts";

/** The last frame of a chat completion stream that ended well. */
const DONE = encodeSseFrame({ data: "[DONE]" });

/** Lifeline's finish reasons (the AI SDK's names) as OpenAI's. */
const FINISH_REASONS: Readonly<Record<string, string>> = {
  stop: "stop",
  length: "length",
  "content-filter": "content_filter",
  "tool-calls": "tool_calls",
};

export function openAiFinishReason(reason: string): string {
  return Object.hasOwn(FINISH_REASONS, reason) ? FINISH_REASONS[reason]! : "stop";
}

export function openAiUsage(usage: Usage): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

/** Seconds since the epoch of an entry's time, as OpenAI's `created` fields are. */
export function unixSeconds(at: string): number {
  return Math.floor(Date.parse(at) / 1000);
}

/** Codes of the server's own trouble, which OpenAI's clients know as `server_error`. */
const SERVER_SIDE: ReadonlySet<string> = new Set(["shutting_down", "engine_unavailable", "internal"]);

/**
 * An error in OpenAI's shape (`{"error":{...}}`): the frame the official client throws as an
 * `APIError` in the middle of a stream, with `code`, `message` and `type`.
 */
export function errorFrame(code: string, message: string): string {
  const type = code.startsWith("model_") || SERVER_SIDE.has(code) ? "server_error" : "invalid_request_error";
  return encodeSseFrame({ data: JSON.stringify({ error: { code, message, type, param: null } }) });
}

/** Why an answer that cannot go on through this door stopped: `answer_diverged` or `generation_cancelled`. */
export function doorErrorFrame(code: "answer_diverged" | "generation_cancelled", id: string): string {
  return errorFrame(code, `${ERROR_CODES[code].message} Generation ${id}.`);
}

/**
 * A generation's log as `chat.completion.chunk` frames, the way OpenAI streams a chat completion:
 * the first chunk carries `role`, each new piece of text a `content` delta, the last choice chunk
 * the `finish_reason`, then (with `include_usage`) a chunk with `choices: []` and the usage, then
 * `data: [DONE]`. Every chunk's `id` is the generation's id.
 *
 * A pure function of the entries given: the text goes through {@link AppendOnlyText}, so a
 * `rewind` or a `reset` sends nothing until the text passes what was shown, and an answer whose
 * text no longer begins with it ends with an `answer_diverged` error frame (decision 025). A
 * failed answer ends with an error frame carrying the log's code; a cancelled one with
 * `generation_cancelled`. After its last frame it gives nothing more.
 */
export class ChatChunks implements LogFormat {
  readonly #id: string;
  readonly #includeUsage: boolean;
  readonly #text = new AppendOnlyText();
  #head: string | undefined;
  #over = false;

  constructor(id: string, includeUsage: boolean) {
    this.#id = id;
    this.#includeUsage = includeUsage;
  }

  /** The stream has said its last frame. */
  get over(): boolean {
    return this.#over;
  }

  /** The frames one entry adds (possibly none), in the log's offset order. */
  apply(entry: Entry): string {
    if (this.#over) return "";
    const step = this.#text.apply(entry);
    if (step.kind === "diverged") return this.#end(doorErrorFrame("answer_diverged", this.#id));
    switch (entry.type) {
      case "created": {
        if (this.#head !== undefined) return ""; // the log again after a reset: the stream has begun
        const created = unixSeconds(entry.at);
        this.#head = `{"id":${JSON.stringify(this.#id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(entry.request.model)},"system_fingerprint":null,"choices":`;
        return this.#chunk({ role: "assistant", content: "" }, null);
      }
      case "delta":
        return step.text === "" ? "" : this.#chunk({ content: step.text }, null);
      case "completed": {
        // A text that was cut back and ended shorter than what was shown is not the answer shown.
        if (this.#text.text !== this.#text.shown) return this.#end(doorErrorFrame("answer_diverged", this.#id));
        let frames = this.#chunk({}, openAiFinishReason(entry.finishReason));
        if (this.#includeUsage) frames += this.#frame("[]", JSON.stringify(openAiUsage(entry.usage)));
        return this.#end(frames + DONE);
      }
      case "failed":
        return this.#end(failureFrame(entry.error, this.#id));
      case "cancelled":
        return this.#end(doorErrorFrame("generation_cancelled", this.#id));
      default:
        return "";
    }
  }

  /** The log follows again from offset 1 (a `reset`): what was shown stays shown. */
  reset(): void {
    this.#text.reset();
  }

  /** The stream stops before the answer's end: an error frame naming where the answer can be read on. */
  interrupted(code: "shutting_down" | "engine_unavailable" | "generation_not_found"): string {
    this.#over = true;
    const onward = code === "generation_not_found" ? "" : ` The answer goes on: read generation ${this.#id} at ${routes.events(this.#id)}.`;
    return errorFrame(code, `${ERROR_CODES[code].message}${onward}`);
  }

  #chunk(delta: Record<string, string>, finishReason: string | null): string {
    const choice = { index: 0, delta, logprobs: null, finish_reason: finishReason };
    return this.#frame(`[${JSON.stringify(choice)}]`, "null");
  }

  #frame(choices: string, usage: string): string {
    const tail = this.#includeUsage ? `,"usage":${usage}}` : "}";
    return encodeSseFrame({ data: `${this.#head ?? "{"}${choices}${tail}` });
  }

  #end(frames: string): string {
    this.#over = true;
    return frames;
  }
}

/** A failed answer's error frame: the log's code, its message, and the generation to read. */
function failureFrame(error: ErrorInfo, id: string): string {
  return errorFrame(error.code, `${error.message} (generation ${id})`);
}

/** A finished generation as one `chat.completion` object (`stream: false`). */
export function chatCompletionOf(view: GenerationView): Record<string, unknown> {
  return {
    id: view.id,
    object: "chat.completion",
    created: unixSeconds(view.createdAt),
    model: view.request.model,
    system_fingerprint: null,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: view.text, refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: openAiFinishReason(view.finishReason ?? "stop"),
      },
    ],
    usage: openAiUsage(view.usage ?? { promptTokens: 0, completionTokens: 0 }),
  };
}
