import fc from "fast-check";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig, OPTION_TABLE } from "../../../src/cli/config.ts";
import { buildModelRegistry, ModelConfigError, readModelConfig } from "../../../src/llm/model-config.ts";
import { providerFactoriesFor } from "../../../src/llm/provider-factories.ts";
import type { Violation } from "./api-fuzzer.ts";

const value = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom(
    "",
    "0",
    "-1",
    "65536",
    "1e9",
    "NaN",
    "redis://",
    "redis://h:1",
    "h:1,h:2",
    "memory",
    "sqlite",
    "redis",
    "full",
    "debug",
    "🦙",
    "\u0000",
  ),
  fc.integer().map(String),
);

/** A model configuration file: valid ones with a part replaced, any JSON, or no JSON at all. */
const modelFile = fc.oneof(
  fc
    .record(
      {
        providers: fc.dictionary(
          fc.string({ maxLength: 8 }),
          fc.oneof(
            fc.record(
              {
                type: fc.constantFrom("openai-compatible", "anthropic", "sim", "x"),
                baseUrl: fc.oneof(fc.webUrl(), fc.string()),
                apiKeyEnv: fc.string({ maxLength: 8 }),
              },
              { requiredKeys: [] },
            ),
            fc.jsonValue({ maxDepth: 2 }),
          ),
          { maxKeys: 3 },
        ),
        models: fc.dictionary(
          fc.string({ maxLength: 8 }),
          fc.oneof(
            fc.record(
              {
                provider: fc.string({ maxLength: 8 }),
                model: fc.string({ maxLength: 8 }),
                fallbacks: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
                mode: fc.constantFrom("continue", "restart", "x"),
              },
              { requiredKeys: [] },
            ),
            fc.jsonValue({ maxDepth: 2 }),
          ),
          { maxKeys: 3 },
        ),
        timeouts: fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 })),
        retry: fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 })),
        breaker: fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 })),
      },
      { requiredKeys: [] },
    )
    .map((c) => JSON.stringify(c)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? ""),
  fc.string({ maxLength: 100 }),
);

/**
 * Runs `count` generated configurations through the start-up checks: the options (environment and
 * flags) and the model configuration file. Each must either load or fail with the one error that
 * lists its problems (`ConfigError`, `ModelConfigError`); anything else thrown is a violation.
 */
export async function fuzzConfig(options: { readonly count: number; readonly seed: number; readonly dir: string }): Promise<{
  cases: number;
  loaded: number;
  violations: Violation[];
}> {
  const envNames = OPTION_TABLE.map((o) => o.env);
  const flagNames = OPTION_TABLE.map((o) => o.flag);
  const cases = fc.sample(
    fc.record({
      env: fc.dictionary(fc.constantFrom(...envNames), value, { maxKeys: 5 }),
      flags: fc.dictionary(fc.oneof(fc.constantFrom(...flagNames), fc.string({ maxLength: 10 })), value, { maxKeys: 3 }),
      file: modelFile,
    }),
    { numRuns: options.count, seed: options.seed },
  );
  const violations: Violation[] = [];
  let loaded = 0;
  const path = join(options.dir, "models.json");
  for (const one of cases) {
    try {
      loadConfig(one.env, one.flags);
      writeFileSync(path, one.file);
      const models = readModelConfig(path);
      buildModelRegistry(models, await providerFactoriesFor(models), { ...one.env }, { tokensPerSecond: 30 });
      loaded += 1;
    } catch (error) {
      if (error instanceof ConfigError || error instanceof ModelConfigError) continue;
      violations.push({ case: JSON.stringify(one).slice(0, 1000), problem: `threw ${String(error)}` });
    }
  }
  return { cases: cases.length, loaded, violations };
}
