import type { ModelConfig, ProviderFactory } from "./model-config.ts";

/**
 * Provider types a configuration file can name, besides the built-in `sim`, each loaded on demand:
 * a process whose configuration names no such provider (the default: `sim` alone) starts without
 * the HTTP client and stream parsers they bring (decision 070).
 */
const LOADERS: Readonly<Record<string, () => Promise<ProviderFactory>>> = {
  "openai-compatible": async () => {
    const { createOpenAICompatibleProvider } = await import("./providers/openai-compatible.ts");
    return ({ name, model, config, apiKey }) => {
      if (config.type !== "openai-compatible") throw new TypeError(`provider ${name} is not openai-compatible`);
      return createOpenAICompatibleProvider({
        name,
        model,
        baseUrl: config.baseUrl,
        ...(apiKey ? { apiKey } : {}),
        ...(config.headers ? { headers: config.headers } : {}),
      });
    };
  },
  anthropic: async () => {
    const { createAnthropicProvider } = await import("./providers/anthropic.ts");
    return ({ name, model, config, apiKey }) => {
      if (config.type !== "anthropic") throw new TypeError(`provider ${name} is not anthropic`);
      return createAnthropicProvider({
        name,
        model,
        ...(config.baseUrl ? { baseUrl: config.baseUrl } : {}),
        ...(apiKey ? { apiKey } : {}),
      });
    };
  },
};

/** The factories of the provider types `config` names, loaded; a type with none is left out (the registry says so). */
export async function providerFactoriesFor(config: ModelConfig): Promise<Readonly<Record<string, ProviderFactory>>> {
  const types = new Set(Object.values(config.providers).map((provider) => provider.type));
  const loaded = await Promise.all(
    [...types].filter((type) => Object.hasOwn(LOADERS, type)).map(async (type) => [type, await LOADERS[type]!()] as const),
  );
  return Object.fromEntries(loaded);
}
