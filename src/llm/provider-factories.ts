import type { ProviderFactory } from "./model-config.ts";
import { createAnthropicProvider } from "./providers/anthropic.ts";
import { createOpenAICompatibleProvider } from "./providers/openai-compatible.ts";

/** Provider types a configuration file can name, besides the built-in `sim`. */
export const PROVIDER_FACTORIES: Readonly<Record<string, ProviderFactory>> = {
  "openai-compatible": ({ name, model, config, apiKey }) => {
    if (config.type !== "openai-compatible") throw new TypeError(`provider ${name} is not openai-compatible`);
    return createOpenAICompatibleProvider({
      name,
      model,
      baseUrl: config.baseUrl,
      ...(apiKey ? { apiKey } : {}),
      ...(config.headers ? { headers: config.headers } : {}),
    });
  },
  anthropic: ({ name, model, config, apiKey }) => {
    if (config.type !== "anthropic") throw new TypeError(`provider ${name} is not anthropic`);
    return createAnthropicProvider({ name, model, ...(config.baseUrl ? { baseUrl: config.baseUrl } : {}), ...(apiKey ? { apiKey } : {}) });
  },
};
