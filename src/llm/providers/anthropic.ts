import type { LanguageModelV3 } from "@ai-sdk/provider";
import type { ModelCall, ModelEvent, ModelProvider } from "../provider.ts";
import { ProviderError } from "../provider-error.ts";
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
  // The SDK is loaded when a provider is made, in the background, not when this module is: a
  // fifth of a second of every process's start-up, which a deployment without an Anthropic model
  // never needs. A load that failed is tried again at the next call.
  let loaded: LanguageModelV3 | undefined;
  let loading: Promise<LanguageModelV3> | undefined;
  const load = (): Promise<LanguageModelV3> => {
    const attempt = import("@ai-sdk/anthropic").then(
      ({ createAnthropic }) => {
        loaded = createAnthropic({
          name: options.name,
          baseURL: options.baseUrl ?? ANTHROPIC_DEFAULT_BASE_URL,
          // A string, so the SDK never falls back to ANTHROPIC_API_KEY from the environment.
          apiKey: options.apiKey ?? "",
        }).messages(options.model);
        return loaded;
      },
      (error: unknown) => {
        // Said without the paths a module error names: the message reaches the answer's log.
        const code = (error as { code?: unknown } | null)?.code;
        throw new ProviderError("protocol", `the Anthropic SDK could not be loaded${typeof code === "string" ? ` (${code})` : ""}`, {
          retryable: true,
          provider: options.name,
        });
      },
    );
    attempt.catch(() => {
      if (loading === attempt) loading = undefined;
    });
    return attempt;
  };
  loading = load();
  // An undefined header value is dropped from the request: no empty `x-api-key` when there is no key.
  const headers = options.apiKey === undefined ? { "x-api-key": undefined } : {};
  const streamWith = (model: LanguageModelV3, call: ModelCall): AsyncIterable<ModelEvent> =>
    streamSdkModel(
      {
        ...source,
        model,
        prefill: anthropicPrefill,
        callOptions: () => ({ headers, maxOutputTokens: call.request.max_tokens ?? maxTokens }),
      },
      call,
    );
  return {
    name: options.name,
    // Once the SDK is in, the SDK's own stream, with no layer of promises more per event.
    stream: (call) =>
      loaded
        ? streamWith(loaded, call)
        : (async function* () {
            yield* streamWith(await (loading ??= load()), call);
          })(),
  };
}
