import type { EventSourceMessage } from "eventsource-parser";
import type { Usage } from "../../core/entries.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../provider.ts";
import { fromWireError, isWireError, protocolFailure, type FailureSource } from "./failures.ts";
import { echoSkipper, withPrefill, type Prefill } from "./prompt.ts";
import { EventReader, poster, streamEvents } from "./sse-stream.ts";

export interface AnthropicOptions {
  /** The provider's configured name: the registry key and `ProviderError.details.provider`. */
  readonly name: string;
  /** The API root that `/messages` is under. @defaultValue "https://api.anthropic.com/v1" */
  readonly baseUrl?: string;
  /** Sent as `x-api-key`; none is sent when absent (never read from the environment). */
  readonly apiKey?: string;
  /** The model id, e.g. `claude-sonnet-4-5`. */
  readonly model: string;
  /** `max_tokens` when the request names none; the Messages API requires one. @defaultValue 4096 */
  readonly defaultMaxTokens?: number;
}

export const ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com/v1";
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;
/** The version of the Messages API whose events this reader knows. */
const ANTHROPIC_VERSION = "2023-06-01";
/** The Messages API's highest temperature; a request's higher one (OpenAI's range goes to 2) is sent as this. */
const MAX_TEMPERATURE = 1;

/** Anthropic's stop reasons, in the words every provider of Lifeline reports. */
const FINISH_REASONS: Readonly<Record<string, string>> = {
  end_turn: "stop",
  stop_sequence: "stop",
  pause_turn: "stop",
  max_tokens: "length",
  model_context_window_exceeded: "length",
  refusal: "content-filter",
  tool_use: "tool-calls",
};

/**
 * The Messages API refuses an assistant message that ends in whitespace: the prefill is sent
 * without it, and the whitespace the model produces again is dropped from the start of its output.
 */
export function anthropicPrefill(prefix: string): Prefill {
  const sent = prefix.trimEnd();
  return { sent, echo: prefix.slice(sent.length) };
}

/**
 * A model behind the Anthropic Messages wire format. A non-empty prefix is sent as a trailing
 * assistant message, which the Messages API continues. The API has no `seed`; it is not sent. The
 * stream is read by {@link streamEvents}, as the OpenAI-compatible one is (decision 075).
 */
export function createAnthropicProvider(options: AnthropicOptions): ModelProvider {
  const source: FailureSource = { provider: options.name, secret: options.apiKey };
  const maxTokens = options.defaultMaxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS;
  const post = poster(`${(options.baseUrl ?? ANTHROPIC_DEFAULT_BASE_URL).replace(/\/+$/, "")}/messages`, {
    "content-type": "application/json",
    accept: "text/event-stream",
    "anthropic-version": ANTHROPIC_VERSION,
    ...(options.apiKey === undefined ? {} : { "x-api-key": options.apiKey }),
  });
  return {
    name: options.name,
    stream: (call) => {
      const { sent, echo } = anthropicPrefill(call.prefix);
      const body = requestBody(options.model, maxTokens, call, sent);
      return streamEvents(source, () => post(body), call, new MessageReader(source, echo));
    },
  };
}

interface TextBlock {
  readonly type: "text";
  readonly text: string;
}

interface Turn {
  readonly role: "user" | "assistant";
  readonly content: TextBlock[];
}

/**
 * The Messages body: the system messages as `system` blocks, the others as turns (messages of one
 * role in a row in one turn, as the API would combine them), the prefill appended as the OpenAI
 * path appends it. The API refuses a last assistant turn that ends in whitespace: it is sent
 * without it.
 */
function requestBody(model: string, maxTokens: number, call: ModelCall, prefill: string): string {
  const { request } = call;
  const system: TextBlock[] = [];
  const turns: Turn[] = [];
  for (const message of withPrefill(request.messages, prefill)) {
    const block: TextBlock = { type: "text", text: message.content };
    const last = turns.at(-1);
    if (message.role === "system") system.push(block);
    else if (last?.role === message.role) last.content.push(block);
    else turns.push({ role: message.role, content: [block] });
  }
  const end = turns.at(-1);
  if (end?.role === "assistant") end.content.push({ type: "text", text: end.content.pop()!.text.trimEnd() });
  return JSON.stringify({
    model,
    max_tokens: request.max_tokens ?? maxTokens,
    ...(system.length === 0 ? {} : { system }),
    messages: turns,
    stream: true,
    ...(request.temperature === undefined ? {} : { temperature: Math.min(request.temperature, MAX_TEMPERATURE) }),
  });
}

/**
 * The Messages stream: `message_start` (the prompt's tokens), a `content_block_delta` per piece of
 * text, `message_delta` (the stop reason and the output's tokens), `message_stop`; an `error` event
 * fails the call. Other events (`ping`, block starts and stops, kinds of content that are not the
 * answer's text, event types added later) are skipped, as the API asks of its clients.
 */
class MessageReader extends EventReader {
  readonly #skipEcho: (text: string) => string;
  #stopReason: string | undefined;
  #usage: { -readonly [K in keyof Usage]: Usage[K] } = { promptTokens: 0, completionTokens: 0 };

  constructor(source: FailureSource, echo: string) {
    super(source);
    this.#skipEcho = echoSkipper(echo);
  }

  finish(): ModelEvent | undefined {
    const reason = this.#stopReason;
    if (reason === undefined) return undefined;
    // Own keys only: a reason named like an Object property (`constructor`) is one it does not know.
    const known = Object.hasOwn(FINISH_REASONS, reason) ? FINISH_REASONS[reason] : undefined;
    return { type: "finish", finishReason: known ?? "other", usage: { ...this.#usage } };
  }

  protected onEvent(message: EventSourceMessage): void {
    const data = this.object(message.data);
    switch (data.type) {
      case "content_block_delta": {
        const delta = data.delta as { type?: unknown; text?: unknown } | null | undefined;
        if (delta?.type !== "text_delta" || typeof delta.text !== "string") return;
        const text = this.#skipEcho(delta.text);
        if (text !== "") this.token(text);
        return;
      }
      case "message_start":
        this.#countUsage((data.message as { usage?: unknown } | null | undefined)?.usage);
        return;
      case "message_delta": {
        const stopReason = (data.delta as { stop_reason?: unknown } | null | undefined)?.stop_reason;
        if (typeof stopReason === "string") this.#stopReason = stopReason;
        this.#countUsage(data.usage);
        return;
      }
      case "message_stop":
        this.done = true;
        return;
      case "error":
        throw isWireError(data.error)
          ? fromWireError(data.error, this.source)
          : protocolFailure(this.source, "an error event without a message");
      default:
        if (typeof data.type !== "string") throw protocolFailure(this.source, "a stream event without a type");
    }
  }

  /**
   * The tokens a `usage` object counts: the prompt's (with those read from or written to the
   * prompt cache, which the API counts apart) and the output's, each where it is given.
   */
  #countUsage(usage: unknown): void {
    if (typeof usage !== "object" || usage === null) return;
    const u = usage as Record<string, unknown>;
    const count = (name: string): number => (typeof u[name] === "number" ? u[name] : 0);
    if (typeof u.input_tokens === "number") {
      this.#usage.promptTokens = count("input_tokens") + count("cache_creation_input_tokens") + count("cache_read_input_tokens");
    }
    if (typeof u.output_tokens === "number") this.#usage.completionTokens = u.output_tokens;
  }
}
