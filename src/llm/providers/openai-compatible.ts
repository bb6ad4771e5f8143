import type { EventSourceMessage } from "eventsource-parser";
import type { Usage } from "../../core/entries.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../provider.ts";
import { fromWireError, isWireError, protocolFailure, type FailureSource } from "./failures.ts";
import { withPrefill } from "./prompt.ts";
import { EventReader, poster, streamEvents } from "./sse-stream.ts";

export interface OpenAICompatibleOptions {
  /** The provider's configured name: the registry key and `ProviderError.details.provider`. */
  readonly name: string;
  /** The API root that `/chat/completions` is under, e.g. `https://api.openai.com/v1`. */
  readonly baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`; none is sent when absent. */
  readonly apiKey?: string;
  /** The model id sent in the request body. */
  readonly model: string;
  /** Extra request headers. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The finish reasons of the wire, in the words every provider of Lifeline reports. */
const FINISH_REASONS: Readonly<Record<string, string>> = {
  stop: "stop",
  length: "length",
  content_filter: "content-filter",
  tool_calls: "tool-calls",
  function_call: "tool-calls",
};

/** What one `chat.completion.chunk` may carry that Lifeline reads; everything else is ignored. */
interface Chunk {
  readonly error?: unknown;
  readonly choices?: unknown;
  readonly usage?: unknown;
}

/**
 * A model behind the OpenAI Chat Completions wire format (OpenAI, vLLM, llama.cpp, Ollama, our
 * sim-llm...). A non-empty prefix is sent as a trailing assistant message; servers that continue
 * it (sim-llm, vLLM's `continue_final_message`) produce only the rest of the answer. The stream
 * is read by {@link streamEvents}.
 */
export function createOpenAICompatibleProvider(options: OpenAICompatibleOptions): ModelProvider {
  const source: FailureSource = { provider: options.name, secret: options.apiKey };
  const headers: Record<string, string> = {
    // Lower-cased, so a configured `Authorization` or `Content-Type` is replaced, not sent twice.
    ...Object.fromEntries(Object.entries(options.headers ?? {}).map(([header, value]) => [header.toLowerCase(), value])),
    "content-type": "application/json",
    accept: "text/event-stream",
    ...(options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }),
  };
  const post = poster(`${options.baseUrl.replace(/\/+$/, "")}/chat/completions`, headers);
  return {
    name: options.name,
    stream: (call) => streamEvents(source, () => post(requestBody(options.model, call)), call, new ChunkReader(source)),
  };
}

function requestBody(model: string, call: ModelCall): string {
  const { request } = call;
  return JSON.stringify({
    model,
    messages: withPrefill(request.messages, call.prefix),
    stream: true,
    stream_options: { include_usage: true },
    ...(request.max_tokens === undefined ? {} : { max_tokens: request.max_tokens }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.seed === undefined ? {} : { seed: request.seed }),
  });
}

/** The OpenAI Chat Completions stream: a `delta.content` per token, `finish_reason` and `usage` at the end, `[DONE]`. */
class ChunkReader extends EventReader {
  #finishReason: string | undefined;
  #usage: Usage = { promptTokens: 0, completionTokens: 0 };

  finish(): ModelEvent | undefined {
    const reason = this.#finishReason;
    if (reason === undefined) return undefined;
    // Own keys only: a reason named like an Object property (`constructor`) is one it does not know.
    const known = Object.hasOwn(FINISH_REASONS, reason) ? FINISH_REASONS[reason] : undefined;
    return { type: "finish", finishReason: known ?? "other", usage: this.#usage };
  }

  protected onEvent(message: EventSourceMessage): void {
    if (message.data === "[DONE]") {
      this.done = true;
      return;
    }
    const chunk: Chunk = this.object(message.data);
    if (chunk.error !== undefined && chunk.error !== null) {
      throw isWireError(chunk.error)
        ? fromWireError(chunk.error, this.source)
        : protocolFailure(this.source, "an error chunk without a message");
    }
    const usage = chunk.usage as { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined;
    if (typeof usage === "object" && usage !== null) {
      this.#usage = {
        promptTokens: typeof usage.prompt_tokens === "number" ? usage.prompt_tokens : 0,
        completionTokens: typeof usage.completion_tokens === "number" ? usage.completion_tokens : 0,
      };
    }
    if (!Array.isArray(chunk.choices)) return;
    const choice = chunk.choices[0] as { delta?: { content?: unknown } | null; finish_reason?: unknown } | null | undefined;
    if (typeof choice !== "object" || choice === null) return;
    const content = choice.delta?.content;
    if (typeof content === "string" && content !== "") this.token(content);
    if (typeof choice.finish_reason === "string") this.#finishReason = choice.finish_reason;
  }
}
