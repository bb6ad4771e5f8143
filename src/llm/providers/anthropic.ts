import type { LanguageModelV3 } from "@ai-sdk/provider";
import type { ModelProvider } from "../provider.ts";
import type { FailureSource } from "./failures.ts";
import type { Prefill } from "./prompt.ts";
import { streamSdkModel } from "./sdk-stream.ts";

export interface AnthropicOptions {
  /** The provider's configured name: the registry key and `ProviderError.details.provider`. */
  readonly name: string;
  /** The API root that `/messages` is under. @defaultValue "https://api.anthropic.com/v1" */
  readonly baseUrl?: string;
  /** Sent as `x-api-key`; none is sent when absent (the SDK's environment fallback is not used). */
  readonly apiKey?: string;
  /** The model id, e.g. `claude-sonnet-4-5`. */
  readonly model: string;
  /** `max_tokens` when the request names none; the Messages API requires one. @defaultValue 4096 */
  readonly defaultMaxTokens?: number;
}

export const ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com/v1";
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/**
 * The Messages API refuses a prefill that ends in whitespace, and the SDK trims it: the
 * whitespace is sent as missing and expected back at the start of the output.
 */
export function anthropicPrefill(prefix: string): Prefill {
  const sent = prefix.trimEnd();
  return { sent, echo: prefix.slice(sent.length) };
}

/**
 * A model behind the Anthropic Messages wire format. A non-empty prefix is sent as a trailing
 * assistant message, which the Messages API continues. The API has no `seed`; it is ignored.
 */
export function createAnthropicProvider(options: AnthropicOptions): ModelProvider {
  const source: FailureSource = { provider: options.name, secret: options.apiKey };
  const maxTokens = options.defaultMaxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS;
  // The SDK is loaded at the first call, not at start: a fifth of a second of every process's
  // start-up, which a deployment without an Anthropic model never needs.
  let model: Promise<LanguageModelV3> | undefined;
  const load = async (): Promise<LanguageModelV3> => {
    const { createAnthropic } = await import("@ai-sdk/anthropic");
    return createAnthropic({
      name: options.name,
      baseURL: options.baseUrl ?? ANTHROPIC_DEFAULT_BASE_URL,
      // A string, so the SDK never falls back to ANTHROPIC_API_KEY from the environment.
      apiKey: options.apiKey ?? "",
    }).messages(options.model);
  };
  // An undefined header value is dropped from the request: no empty `x-api-key` when there is no key.
  const headers = options.apiKey === undefined ? { "x-api-key": undefined } : {};
  return {
    name: options.name,
    async *stream(call) {
      yield* streamSdkModel(
        {
          ...source,
          model: await (model ??= load()),
          prefill: anthropicPrefill,
          callOptions: () => ({ headers, maxOutputTokens: call.request.max_tokens ?? maxTokens }),
        },
        call,
      );
    },
  };
}
