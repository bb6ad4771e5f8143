import type { ModelProvider, ModelRegistry } from "./provider.ts";
import { SimProvider, type SimOptions } from "./sim/sim-provider.ts";

/** The models this deployment serves. Today: the built-in `sim`. */
export function createModelRegistry(options: { sim?: SimOptions } = {}): ModelRegistry {
  const providers = new Map<string, ModelProvider>([["sim", new SimProvider(options.sim)]]);
  return {
    resolve: (model) => providers.get(model),
    names: () => [...providers.keys()],
  };
}
