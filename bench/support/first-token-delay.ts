import { setTimeout as sleep } from "node:timers/promises";
import type { ModelRegistry } from "../../src/llm/models.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../../src/llm/provider.ts";

/**
 * A model that thinks before it speaks, as real ones do (prompt processing): the first token
 * comes `delayMs` after the call, then the wrapped model streams at its own pace. It also lets
 * every client open its stream before tokens flow, so latency measures delivery, not catch-up.
 */
export function withFirstTokenDelay(provider: ModelProvider, delayMs: number): ModelProvider {
  if (delayMs <= 0) return provider;
  return {
    name: provider.name,
    async *stream(call: ModelCall): AsyncIterable<ModelEvent> {
      await sleep(delayMs, undefined, { signal: call.signal });
      yield* provider.stream(call);
    },
  };
}

/** The registry with every model wrapped by {@link withFirstTokenDelay}. */
export function registryWithFirstTokenDelay(registry: ModelRegistry, delayMs: number): ModelRegistry {
  return {
    names: () => registry.names(),
    plan: (model) => {
      const plan = registry.plan(model);
      return (
        plan && { ...plan, routes: plan.routes.map((route) => ({ ...route, provider: withFirstTokenDelay(route.provider, delayMs) })) }
      );
    },
  };
}
