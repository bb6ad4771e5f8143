import { readFileSync } from "node:fs";
import { z } from "zod";
import type { ModelProvider } from "./provider.ts";
import { DEFAULT_RETRY, type RetryPolicy } from "./resilience/backoff.ts";
import { CircuitBreaker, DEFAULT_BREAKER } from "./resilience/circuit-breaker.ts";
import type { ModelPlan, ModelRegistry } from "./resilience/plan.ts";
import { DEFAULT_TIMEOUTS, type Timeouts } from "./resilience/timeouts.ts";
import { SimProvider } from "./sim/sim-provider.ts";
import { registryOf, simPlan } from "./models.ts";

const ms = z
  .number()
  .int()
  .min(1)
  .max(24 * 3600 * 1000);
const timeoutsSchema = z.object({ connectMs: ms, firstTokenMs: ms, idleMs: ms, totalMs: ms }).partial().strict();
const retrySchema = z
  .object({ maxAttempts: z.number().int().min(1).max(20), baseDelayMs: ms, maxDelayMs: ms, maxRetryAfterMs: ms })
  .partial()
  .strict();
const breakerSchema = z
  .object({ failureThreshold: z.number().int().min(1).max(1000), cooldownMs: ms })
  .partial()
  .strict();
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/, "letters, digits and . _ : / - only");
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]{0,127}$/, "an environment variable name");

/**
 * Headers the HTTP client sets itself or that would change how it frames the request and the
 * connection; undici refuses most of them per request, and they are no model's business.
 */
const TRANSPORT_HEADERS = new Set([
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "upgrade",
  "expect",
  "te",
  "trailer",
  "transfer-encoding",
  "content-length",
]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
const extraHeaders = z.record(z.string(), z.string()).superRefine((headers, ctx) => {
  for (const [header, value] of Object.entries(headers)) {
    const problem = !HEADER_NAME.test(header)
      ? "an HTTP header name"
      : TRANSPORT_HEADERS.has(header.toLowerCase())
        ? "set by Lifeline's HTTP client, not by configuration"
        : value.length > 8192 || !/^[\t\x20-\x7e\x80-\xff]*$/.test(value)
          ? "a header value of visible Latin-1 characters, spaces and tabs, at most 8,192"
          : undefined;
    if (problem) ctx.addIssue({ code: "custom", path: [header], message: problem });
  }
});

const providerSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("sim"), tokensPerSecond: z.number().positive().max(1_000_000).optional() }).strict(),
  z
    .object({
      type: z.literal("openai-compatible"),
      baseUrl: z.string().url(),
      apiKeyEnv: envName.optional(),
      headers: extraHeaders.optional(),
      breaker: breakerSchema.optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal("anthropic"),
      baseUrl: z.string().url().optional(),
      apiKeyEnv: envName.optional(),
      breaker: breakerSchema.optional(),
    })
    .strict(),
]);

const modelSchema = z
  .object({
    provider: name,
    /** The provider's own name for the model; defaults to this model's name. */
    model: z.string().min(1).max(200).optional(),
    continuation: z.enum(["continue", "restart"]).optional(),
    fallbacks: z.array(name).max(10).optional(),
    timeouts: timeoutsSchema.optional(),
    retry: retrySchema.optional(),
  })
  .strict();

export const modelConfigSchema = z
  .object({
    providers: z.record(name, providerSchema).default({}),
    models: z.record(name, modelSchema).default({}),
    timeouts: timeoutsSchema.optional(),
    retry: retrySchema.optional(),
    breaker: breakerSchema.optional(),
  })
  .strict();

export type ModelConfig = z.output<typeof modelConfigSchema>;
type ProviderConfig = z.output<typeof providerSchema>;

/** Builds a provider of a configured type for one upstream model; keys come from `env`. */
export type ProviderFactory = (options: {
  name: string;
  model: string;
  config: ProviderConfig;
  apiKey: string | undefined;
}) => ModelProvider;

export class ModelConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid model configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ModelConfigError";
  }
}

/** Reads and validates a configuration file; one error lists every problem. */
export function readModelConfig(path: string): ModelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new ModelConfigError([`${path}: ${(error as Error).message}`]);
  }
  const parsed = modelConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ModelConfigError(parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "(file)"}: ${i.message}`));
  }
  return parsed.data;
}

/**
 * The registry a configuration describes, plus the built-in `sim` unless a model of that name is
 * configured. Checks what the schema cannot: references, and that named keys are set.
 */
export function buildModelRegistry(
  config: ModelConfig,
  factories: Readonly<Record<string, ProviderFactory>>,
  env: NodeJS.ProcessEnv,
  sim: { tokensPerSecond: number },
): ModelRegistry {
  const problems: string[] = [];
  const breakers = new Map<string, CircuitBreaker>();
  for (const [providerName, provider] of Object.entries(config.providers)) {
    breakers.set(
      providerName,
      new CircuitBreaker({ ...DEFAULT_BREAKER, ...given(config.breaker), ...given("breaker" in provider ? provider.breaker : undefined) }),
    );
    if ("apiKeyEnv" in provider && provider.apiKeyEnv && !env[provider.apiKeyEnv]) {
      problems.push(`providers.${providerName}.apiKeyEnv: ${provider.apiKeyEnv} is not set`);
    }
  }
  const routeOf = (modelName: string) => {
    const model = config.models[modelName];
    if (!model) return undefined;
    const provider = config.providers[model.provider];
    const breaker = breakers.get(model.provider);
    if (!provider || !breaker) return undefined;
    const upstream = model.model ?? modelName;
    const apiKey = "apiKeyEnv" in provider && provider.apiKeyEnv ? env[provider.apiKeyEnv] : undefined;
    const instance =
      provider.type === "sim"
        ? new SimProvider({ tokensPerSecond: provider.tokensPerSecond ?? sim.tokensPerSecond })
        : factories[provider.type]?.({ name: model.provider, model: upstream, config: provider, apiKey });
    return instance && { name: modelName, provider: instance, breaker, continuation: model.continuation ?? "continue" };
  };
  const plans: ModelPlan[] = [];
  for (const [modelName, model] of Object.entries(config.models)) {
    const provider = config.providers[model.provider];
    if (!provider) problems.push(`models.${modelName}.provider: no provider named "${model.provider}"`);
    else if (provider.type !== "sim" && !factories[provider.type])
      problems.push(`providers.${model.provider}.type: ${provider.type} is not available`);
    for (const fallback of model.fallbacks ?? []) {
      if (!config.models[fallback]) problems.push(`models.${modelName}.fallbacks: no model named "${fallback}"`);
      if (fallback === modelName) problems.push(`models.${modelName}.fallbacks: a model cannot fall back to itself`);
    }
  }
  if (problems.length > 0) throw new ModelConfigError(problems);
  for (const [modelName, model] of Object.entries(config.models)) {
    const routes = [modelName, ...(model.fallbacks ?? [])].map(routeOf).filter((r) => r !== undefined);
    const timeouts: Timeouts = { ...DEFAULT_TIMEOUTS, ...given(config.timeouts), ...given(model.timeouts) };
    const retry: RetryPolicy = { ...DEFAULT_RETRY, ...given(config.retry), ...given(model.retry) };
    plans.push({ name: modelName, routes, timeouts, retry });
  }
  if (!config.models.sim) plans.push(simPlan(new SimProvider({ tokensPerSecond: sim.tokensPerSecond })));
  return registryOf(plans);
}

/** The fields that were given (a partial from the file without its undefined keys). */
function given<T extends object>(partial: { [K in keyof T]?: T[K] | undefined } | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(partial ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}
