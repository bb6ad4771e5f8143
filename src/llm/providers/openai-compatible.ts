import { InvalidResponseDataError, type LanguageModelV3StreamPart } from "@ai-sdk/provider";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import type { ModelProvider } from "../provider.ts";
import { endedEarly, type FailureSource } from "./failures.ts";
import { verbatimPrefill } from "./prompt.ts";
import { streamSdkModel } from "./sdk-stream.ts";

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

function hasFinishReason(raw: unknown): boolean {
  const choices = (raw as { choices?: unknown } | null)?.choices;
  return Array.isArray(choices) && choices.some((c) => (c as { finish_reason?: unknown } | null)?.finish_reason != null);
}

/**
 * The SDK reports a stream that ends without a `finish_reason` as invalid data; that is a cut
 * connection (a proxy that closes cleanly mid-answer), so it becomes a retryable network error.
 */
function detectEndedEarly(source: FailureSource): TransformStream<LanguageModelV3StreamPart, LanguageModelV3StreamPart> {
  let sawFinishReason = false;
  return new TransformStream({
    transform(part, controller) {
      if (part.type === "raw") {
        if (hasFinishReason(part.rawValue)) sawFinishReason = true;
        return;
      }
      if (part.type === "error" && !sawFinishReason && InvalidResponseDataError.isInstance(part.error)) {
        controller.enqueue({ type: "error", error: endedEarly(source) });
        return;
      }
      controller.enqueue(part);
    },
  });
}

/**
 * A model behind the OpenAI Chat Completions wire format (OpenAI, vLLM, llama.cpp, Ollama,
 * our sim-llm...). A non-empty prefix is sent as a trailing assistant message; servers that
 * continue it (sim-llm, vLLM's `continue_final_message`) produce only the rest of the answer.
 */
export function createOpenAICompatibleProvider(options: OpenAICompatibleOptions): ModelProvider {
  const source: FailureSource = { provider: options.name, secret: options.apiKey };
  const model = createOpenAICompatible({
    name: options.name,
    baseURL: options.baseUrl,
    includeUsage: true,
    ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    ...(options.headers === undefined ? {} : { headers: { ...options.headers } }),
  }).chatModel(options.model);
  return {
    name: options.name,
    stream: (call) =>
      streamSdkModel(
        {
          ...source,
          model,
          prefill: verbatimPrefill,
          callOptions: () => ({ includeRawChunks: true }),
          parts: (parts) => parts.pipeThrough(detectEndedEarly(source)),
        },
        call,
      ),
  };
}
