import { expect, test } from "vitest";
import { buildModelRegistry, modelConfigSchema } from "../../src/llm/model-config.ts";
import { providerFactoriesFor } from "../../src/llm/provider-factories.ts";

test("the factories of the provider types a configuration names are loaded, and only those; each model gets a provider of its type", async () => {
  const config = modelConfigSchema.parse({
    providers: {
      up: { type: "openai-compatible", baseUrl: "http://127.0.0.1:9/v1" },
      an: { type: "anthropic", baseUrl: "http://127.0.0.1:9" },
      local: { type: "sim" },
    },
    models: { chat: { provider: "up" }, claude: { provider: "an" }, fake: { provider: "local" } },
  });
  const factories = await providerFactoriesFor(config);
  expect(Object.keys(factories).sort()).toEqual(["anthropic", "openai-compatible"]);
  const registry = buildModelRegistry(config, factories, {}, { tokensPerSecond: 30 });
  expect(["chat", "claude", "fake"].map((model) => registry.plan(model)?.routes[0]?.provider.name)).toEqual(["up", "an", "sim"]);

  // A configuration of `sim` models alone loads none.
  expect(
    await providerFactoriesFor(modelConfigSchema.parse({ providers: { local: { type: "sim" } }, models: { fake: { provider: "local" } } })),
  ).toEqual({});
});
