/**
 * The path the lean stream readers replaced (decisions 017, 075): an AI SDK language model driven
 * at `doStream` (fetch, web streams, zod-checked chunks), kept only for `bench/provider-read.ts`
 * to measure against.
 */
import {
  APICallError,
  type LanguageModelV3,
  type LanguageModelV3CallOptions,
  type LanguageModelV3Message,
  type LanguageModelV3Prompt,
  type LanguageModelV3StreamPart,
} from "@ai-sdk/provider";
import type { ChatMessage } from "../../src/core/entries.ts";
import type { ModelCall, ModelEvent } from "../../src/llm/provider.ts";
import { ProviderError } from "../../src/llm/provider-error.ts";
import {
  endedEarly,
  fromWireError,
  isWireError,
  networkFailure,
  protocolFailure,
  statusFailure,
  type FailureSource,
} from "../../src/llm/providers/failures.ts";
import { echoSkipper, withPrefill, type Prefill } from "../../src/llm/providers/prompt.ts";

type Part = LanguageModelV3StreamPart;

/** One AI SDK language model, driven at the `doStream` level, and what its wire format needs. */
export interface SdkModel extends FailureSource {
  readonly model: LanguageModelV3;
  /** How the prefix is sent, for wire formats that alter a trailing assistant message. */
  readonly prefill: (prefix: string) => Prefill;
  /** Call options of this wire format: request headers, `maxOutputTokens` defaults, raw chunks. */
  readonly callOptions?: (call: ModelCall) => Partial<LanguageModelV3CallOptions>;
  /** Rewrites the stream parts before they are read, for checks the SDK leaves out. */
  readonly parts?: (parts: ReadableStream<Part>) => ReadableStream<Part>;
}

function requestOptions(call: ModelCall, sent: string, signal: AbortSignal): LanguageModelV3CallOptions {
  const { request } = call;
  return {
    prompt: toPrompt(request.messages, sent),
    abortSignal: signal,
    ...(request.max_tokens === undefined ? {} : { maxOutputTokens: request.max_tokens }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.seed === undefined ? {} : { seed: request.seed }),
  };
}

function finishEvent(part: Extract<Part, { type: "finish" }>): ModelEvent {
  return {
    type: "finish",
    finishReason: part.finishReason.unified,
    usage: { promptTokens: part.usage.inputTokens.total ?? 0, completionTokens: part.usage.outputTokens.total ?? 0 },
  };
}

/**
 * Streams one call through an SDK model: `open` once the response has started, a `token` per
 * text delta, then one `finish`. No retries happen here. Failures throw `ProviderError`; an abort
 * of `call.signal` aborts the HTTP request (closing its socket) and throws the signal's reason.
 */
export async function* streamSdkModel(target: SdkModel, call: ModelCall): AsyncGenerator<ModelEvent> {
  call.signal.throwIfAborted();
  // Our own controller, so that leaving early (a consumer's break, a thrown error) also closes the socket.
  const upstream = new AbortController();
  const onAbort = (): void => upstream.abort(call.signal.reason);
  call.signal.addEventListener("abort", onAbort, { once: true });
  const { sent, echo } = target.prefill(call.prefix);
  const skipEcho = echoSkipper(echo);
  let reader: ReadableStreamDefaultReader<Part> | undefined;
  let finished = false;
  try {
    const result = await target.model.doStream({ ...requestOptions(call, sent, upstream.signal), ...target.callOptions?.(call) });
    reader = (target.parts?.(result.stream) ?? result.stream).getReader();
    yield { type: "open" };
    for (;;) {
      const { done, value: part } = await reader.read();
      if (done) throw endedEarly(target);
      if (part.type === "error") throw part.error;
      if (part.type === "finish") {
        finished = true;
        yield finishEvent(part);
        return;
      }
      if (part.type !== "text-delta") continue;
      const text = skipEcho(part.delta);
      if (text !== "") yield { type: "token", text };
    }
  } catch (error) {
    if (call.signal.aborted) throw call.signal.reason;
    throw toProviderError(error, target);
  } finally {
    call.signal.removeEventListener("abort", onAbort);
    if (!finished) upstream.abort();
    reader?.cancel().catch(() => undefined);
  }
}

function toMessage(message: ChatMessage): LanguageModelV3Message {
  if (message.role === "system") return { role: "system", content: message.content };
  return { role: message.role, content: [{ type: "text", text: message.content }] };
}

/** The SDK prompt for `messages` with the prefill appended (see `withPrefill`). */
function toPrompt(messages: readonly ChatMessage[], prefill: string): LanguageModelV3Prompt {
  return withPrefill(messages, prefill).map(toMessage);
}

/** A failure of the SDK in the terms of the resilience layer, as the lean readers name theirs. */
function toProviderError(error: unknown, source: FailureSource): ProviderError {
  if (error instanceof ProviderError) return error;
  if (APICallError.isInstance(error)) {
    const status = error.statusCode;
    if (status !== undefined && status >= 400) return statusFailure(source, status, error.message, error.responseHeaders);
    return error.isRetryable ? networkFailure(source, error) : protocolFailure(source, error.message);
  }
  if (isWireError(error)) return fromWireError(error, source);
  return protocolFailure(source, `unexpected response: ${error instanceof Error ? error.message : String(error)}`);
}
