import type { ErrorCode } from "../../core/errors.ts";
import { ProviderError } from "../provider-error.ts";
import type { ModelProvider } from "../provider.ts";
import type { RetryPolicy } from "./backoff.ts";
import type { CircuitBreaker } from "./circuit-breaker.ts";
import type { Timeouts } from "./timeouts.ts";

/** One way to serve a model: a configured model on its provider, behind that provider's breaker. */
export interface ModelRoute {
  /** The configured model name, as `started` entries show it. */
  readonly name: string;
  readonly provider: ModelProvider;
  readonly breaker: CircuitBreaker;
  /**
   * What this model does with an answer another call began: `continue` takes the text so far as an
   * assistant prefix; `restart` cannot, so a `rewind` to the empty text comes first.
   */
  readonly continuation: "continue" | "restart";
}

/** How a model is served: its route, then its fallbacks in order, and the rules around them. */
export interface ModelPlan {
  readonly name: string;
  readonly routes: readonly ModelRoute[];
  readonly timeouts: Timeouts;
  readonly retry: RetryPolicy;
}

/** Models by name, as the worker resolves them. */
export interface ModelRegistry {
  plan(model: string): ModelPlan | undefined;
  names(): readonly string[];
}

/** Every provider's breaker the registry's plans use, once each, named by its provider. */
export function breakersOf(models: ModelRegistry): { readonly provider: string; readonly breaker: CircuitBreaker }[] {
  const seen = new Map<CircuitBreaker, string>();
  for (const name of models.names()) {
    for (const route of models.plan(name)?.routes ?? []) if (!seen.has(route.breaker)) seen.set(route.breaker, route.provider.name);
  }
  return [...seen].map(([breaker, provider]) => ({ provider, breaker }));
}

/** Any failure as a ProviderError (an unknown throw is a protocol failure, not retried). */
export function asProviderError(error: unknown, provider: string): ProviderError {
  if (error instanceof ProviderError) return error;
  return new ProviderError("protocol", error instanceof Error ? error.message : String(error), { retryable: false, provider });
}

/** The stable code a `failed` entry carries for a provider failure. */
export function failureCode(error: ProviderError): ErrorCode {
  switch (error.failure) {
    case "timeout":
      return "model_timeout";
    case "network":
    case "circuitOpen":
      return "model_unavailable";
    case "protocol":
      return "model_error";
    case "status":
      if (error.details.status === 429) return "model_rate_limited";
      return error.details.retryable ? "model_unavailable" : "model_rejected";
  }
}
