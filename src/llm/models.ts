import { DEFAULT_RETRY } from "./resilience/backoff.ts";
import { CircuitBreaker, DEFAULT_BREAKER } from "./resilience/circuit-breaker.ts";
import type { ModelPlan, ModelRegistry } from "./resilience/plan.ts";
import { DEFAULT_TIMEOUTS } from "./resilience/timeouts.ts";
import { SimProvider, type SimOptions } from "./sim/sim-provider.ts";

export type { ModelPlan, ModelRegistry };

/** The built-in `sim` model alone (the embedded default, tests and benchmarks). */
export function createModelRegistry(options: { sim?: SimOptions } = {}): ModelRegistry {
  return registryOf([simPlan(new SimProvider(options.sim))]);
}

/** The plan of the built-in `sim` model: it continues prefixes exactly. */
export function simPlan(provider: SimProvider, name = "sim"): ModelPlan {
  return {
    name,
    routes: [{ name, provider, breaker: new CircuitBreaker(DEFAULT_BREAKER), continuation: "continue" }],
    timeouts: DEFAULT_TIMEOUTS,
    retry: DEFAULT_RETRY,
  };
}

export function registryOf(plans: readonly ModelPlan[]): ModelRegistry {
  const byName = new Map(plans.map((plan) => [plan.name, plan]));
  return { plan: (model) => byName.get(model), names: () => [...byName.keys()] };
}
