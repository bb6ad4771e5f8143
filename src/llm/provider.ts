import type { GenerationRequest, Usage } from "../core/entries.ts";

/** One call to a model: answer `request`, continuing after `prefix` (the text already in the log). */
export interface ModelCall {
  readonly request: GenerationRequest;
  /** Text the answer already has; a provider that can continue produces only what follows it. */
  readonly prefix: string;
  readonly signal: AbortSignal;
}

export type ModelEvent =
  /** The provider accepted the call and its stream is open (HTTP headers arrived); optional. */
  | { readonly type: "open" }
  /**
   * Text the model added: one of its tokens, or several in a row (`tokens` of them) when they came
   * in together, so a model ahead of its reader costs one event per read instead of one per token.
   */
  | { readonly type: "token"; readonly text: string; readonly tokens?: number }
  | { readonly type: "finish"; readonly finishReason: string; readonly usage: Usage };

/**
 * A model behind one streaming interface. The stream may yield `open`, then tokens, then exactly
 * one `finish`; it throws a `ProviderError` when the model fails, and stops with the signal's
 * reason (or an AbortError) when `signal` aborts, closing the upstream request.
 */
export interface ModelProvider {
  readonly name: string;
  stream(call: ModelCall): AsyncIterable<ModelEvent>;
}
