import type { EventSourceMessage } from "eventsource-parser";
import type { Usage } from "../../core/entries.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../provider.ts";
import { ProviderError } from "../provider-error.ts";
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

/** The counts of a Messages `usage` object that Lifeline reads. */
const USAGE_COUNTS = ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"] as const;

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
 * What a provider's model refused once, and is no longer sent in its later calls: a temperature
 * (the newest models refuse sampling parameters), a `max_tokens` above the model's limit.
 */
interface Refused {
  temperature: boolean;
  /** The model's limit on `max_tokens`, as its refusal named it. */
  maxTokens: number | undefined;
}

/** A refusal's words for a `max_tokens` above the model's limit: "max_tokens: 8000 > 4096, which is the maximum…". */
const MAX_TOKENS_REFUSAL = /max_tokens: \d+ > (\d+)/;

/**
 * A model behind the Anthropic Messages wire format. A non-empty prefix is sent as a trailing
 * assistant message, which the Messages API continues. The API has no `seed`; it is not sent. The
 * stream is read by {@link streamEvents}, as the OpenAI-compatible one is (decision 075).
 *
 * A call the model refuses (400) for its temperature, or for a `max_tokens` above its limit, is
 * sent again without the temperature, or with the limit, and so are the provider's later calls:
 * which models refuse what changes with every model, and the refusal says it.
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
  const refused: Refused = { temperature: false, maxTokens: undefined };
  /** What a call sends now of what the model may refuse. */
  const limitsOf = ({ request }: ModelCall): Limits => ({
    maxTokens: Math.min(request.max_tokens ?? maxTokens, refused.maxTokens ?? Infinity),
    temperature: request.temperature === undefined || refused.temperature ? undefined : Math.min(request.temperature, MAX_TEMPERATURE),
  });
  const send = (call: ModelCall, limits: Limits): AsyncIterator<ModelEvent> => {
    const { sent, echo } = anthropicPrefill(call.prefix);
    const body = requestBody(options.model, call, sent, limits);
    return streamEvents(source, () => post(body), call, new MessageReader(source, echo));
  };
  /**
   * Whether `error` refuses something of `sent` that can be left out or lowered; from now on it
   * is. Calls sent together before the first refusal each get theirs, and each is sent again.
   */
  const adjust = (sent: Limits, error: unknown): boolean => {
    if (!(error instanceof ProviderError) || error.details.status !== 400) return false;
    const limit = Number(MAX_TOKENS_REFUSAL.exec(error.message)?.[1]);
    if (limit > 0) {
      if (!(limit < sent.maxTokens)) return false;
      refused.maxTokens = Math.min(limit, refused.maxTokens ?? Infinity);
      return true;
    }
    if (sent.temperature === undefined || !/temperature/i.test(error.message)) return false;
    refused.temperature = true;
    return true;
  };
  return {
    name: options.name,
    stream: (call) => ({
      [Symbol.asyncIterator]: () => {
        let sent: Limits;
        return new SentAgainOnRefusal(
          () => send(call, (sent = limitsOf(call))),
          (error) => adjust(sent, error),
        );
      },
    }),
  };
}

/** What one call sends of what a model may refuse. */
interface Limits {
  readonly maxTokens: number;
  readonly temperature: number | undefined;
}

/** Sends of one call after its first: one for each of the two things a model may refuse. */
const MAX_SENT_AGAIN = 2;

/**
 * A call's events; when its first step fails with a refusal `adjust` can answer (it has changed
 * what is sent), the call is sent again. Past the first step every step is the stream's own.
 */
class SentAgainOnRefusal implements AsyncIterator<ModelEvent> {
  #events: AsyncIterator<ModelEvent>;
  #started = false;

  constructor(
    private readonly send: () => AsyncIterator<ModelEvent>,
    private readonly adjust: (error: unknown) => boolean,
  ) {
    this.#events = send();
  }

  next(): Promise<IteratorResult<ModelEvent>> {
    return this.#started ? this.#events.next() : this.#first();
  }

  async #first(): Promise<IteratorResult<ModelEvent>> {
    this.#started = true;
    for (let again = 0; ; again++) {
      try {
        return await this.#events.next();
      } catch (error) {
        if (again === MAX_SENT_AGAIN || !this.adjust(error)) throw error;
        this.#events = this.send();
      }
    }
  }

  async return(): Promise<IteratorResult<ModelEvent>> {
    return (await this.#events.return?.()) ?? { done: true, value: undefined };
  }
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
function requestBody(model: string, call: ModelCall, prefill: string, limits: Limits): string {
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
    max_tokens: limits.maxTokens,
    ...(system.length === 0 ? {} : { system }),
    messages: turns,
    stream: true,
    ...(limits.temperature === undefined ? {} : { temperature: limits.temperature }),
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
  /** `message_stop` came. */
  #stopped = false;
  /** The usage counts, each as last given: a later event may give some of them and not others. */
  readonly #counts: Record<(typeof USAGE_COUNTS)[number], number> = {
    input_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: 0,
  };

  constructor(source: FailureSource, echo: string) {
    super(source);
    this.#skipEcho = echoSkipper(echo);
  }

  finish(): ModelEvent | undefined {
    // A stream that ended with `message_stop` but named no reason finished for one it did not say.
    const reason = this.#stopReason ?? (this.#stopped ? "" : undefined);
    if (reason === undefined) return undefined;
    // Own keys only: a reason named like an Object property (`constructor`) is one it does not know.
    const known = Object.hasOwn(FINISH_REASONS, reason) ? FINISH_REASONS[reason] : undefined;
    const c = this.#counts;
    const usage: Usage = {
      promptTokens: c.input_tokens + c.cache_creation_input_tokens + c.cache_read_input_tokens,
      completionTokens: c.output_tokens,
    };
    return { type: "finish", finishReason: known ?? "other", usage };
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
        this.#stopped = true;
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
   * The counts a `usage` object gives: the prompt's tokens (with those read from or written to the
   * prompt cache, which the API counts apart) and the output's. A count it leaves out or sends as
   * `null` keeps its last value.
   */
  #countUsage(usage: unknown): void {
    if (typeof usage !== "object" || usage === null) return;
    const given = usage as Record<string, unknown>;
    for (const name of USAGE_COUNTS) {
      const count = given[name];
      if (typeof count === "number") this.#counts[name] = count;
    }
  }
}
