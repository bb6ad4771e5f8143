import { z } from "zod";

/** What the simulator does wrong, on purpose. */
export const FAULT_KINDS = ["none", "error", "rate-limit", "stall", "cut", "slow-first-token"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How fast an answer goes out: tokens per second, or `max`, as fast as the client reads it. */
export type TokenPace = number | "max";

const count = z.coerce.number().int().min(0).max(1_000_000_000);
const status = z.coerce.number().int().min(400).max(599);

/**
 * Every option of `lifeline sim-llm`: its flag, its environment variable, its default and what it
 * means. The CLI parses strings through these schemas; `startSimLlm` validates numbers through the
 * same ones, so both refuse the same values with the same words.
 */
export const SIM_LLM_OPTIONS = {
  host: { flag: "host", env: "LIFELINE_SIM_LLM_HOST", default: "127.0.0.1", doc: "Address to listen on.", schema: z.string().min(1) },
  port: {
    flag: "port",
    env: "LIFELINE_SIM_LLM_PORT",
    default: "8788",
    doc: "Port to listen on (0 picks a free one; startSimLlm defaults to 0).",
    schema: z.coerce.number().int().min(0).max(65535),
  },
  tokensPerSecond: {
    flag: "tokens-per-second",
    env: "LIFELINE_SIM_TOKENS_PER_SECOND",
    default: "30",
    doc: "Pace of the answer, or max: as fast as the client reads.",
    schema: z.union([z.literal("max"), z.coerce.number().positive().max(1_000_000)], {
      error: "a number of tokens per second above 0 (at most 1000000), or max",
    }),
  },
  fault: {
    flag: "fault",
    env: "LIFELINE_SIM_LLM_FAULT",
    default: "none",
    doc: `Fault to inject: ${FAULT_KINDS.join(", ")}.`,
    schema: z.enum(FAULT_KINDS),
  },
  faultStatus: {
    flag: "fault-status",
    env: "LIFELINE_SIM_LLM_FAULT_STATUS",
    default: "500",
    doc: "error: the HTTP status (400-599).",
    schema: status,
  },
  retryAfterSeconds: {
    flag: "retry-after-seconds",
    env: "LIFELINE_SIM_LLM_RETRY_AFTER_SECONDS",
    default: "1",
    doc: "rate-limit: the Retry-After of the 429.",
    schema: count,
  },
  faultAfterTokens: {
    flag: "fault-after-tokens",
    env: "LIFELINE_SIM_LLM_FAULT_AFTER_TOKENS",
    default: "5",
    doc: "stall, cut: tokens sent before the stream stalls or the socket is destroyed.",
    schema: count,
  },
  firstTokenDelayMs: {
    flag: "first-token-delay-ms",
    env: "LIFELINE_SIM_LLM_FIRST_TOKEN_DELAY_MS",
    default: "3000",
    doc: "slow-first-token: headers at once, the body after this delay.",
    schema: count,
  },
  faultCount: {
    flag: "fault-count",
    env: "LIFELINE_SIM_LLM_FAULT_COUNT",
    default: "",
    doc: "Inject the fault this many times, then answer cleanly.",
    schema: z.union([z.literal("").transform(() => undefined), count]),
  },
  faultRate: {
    flag: "fault-rate",
    env: "LIFELINE_SIM_LLM_FAULT_RATE",
    default: "1",
    doc: "Probability that a request gets the fault, drawn from a PRNG seeded by --seed.",
    schema: z.coerce.number().min(0).max(1),
  },
  seed: {
    flag: "seed",
    env: "LIFELINE_SIM_LLM_SEED",
    default: "0",
    doc: "Seed of the fault PRNG: the same seed gives the same faulty requests.",
    schema: z.coerce
      .number()
      .int()
      .min(0)
      .max(2 ** 32 - 1),
  },
} as const;

export type SimLlmOptionName = keyof typeof SIM_LLM_OPTIONS;

/** The options of `startSimLlm`; each defaults as documented in `SIM_LLM_OPTIONS`. */
export interface SimLlmOptions {
  /** @defaultValue "127.0.0.1" */
  readonly host?: string;
  /** @defaultValue 0 (a free port) */
  readonly port?: number;
  /** Tokens per second, or `"max"`: as fast as the client reads. @defaultValue 30 */
  readonly tokensPerSecond?: TokenPace;
  /** @defaultValue "none" */
  readonly fault?: FaultKind;
  /** For `error`. @defaultValue 500 */
  readonly faultStatus?: number;
  /** For `rate-limit`. @defaultValue 1 */
  readonly retryAfterSeconds?: number;
  /** For `stall` and `cut`. @defaultValue 5 */
  readonly faultAfterTokens?: number;
  /** For `slow-first-token`. @defaultValue 3000 */
  readonly firstTokenDelayMs?: number;
  /** Only this many faults, then clean answers. @defaultValue no limit */
  readonly faultCount?: number | undefined;
  /** Each request gets the fault with this probability. @defaultValue 1 */
  readonly faultRate?: number;
  /** Seed of the fault PRNG. @defaultValue 0 */
  readonly seed?: number;
}

export type ResolvedSimLlmOptions = Readonly<Required<Omit<SimLlmOptions, "faultCount">>> & { readonly faultCount: number | undefined };

export class SimLlmOptionsError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid sim-llm options:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "SimLlmOptionsError";
  }
}

/**
 * Validates raw values (strings from flags or the environment, or typed values from code), fills
 * the defaults and freezes the result. `describe` names a value's source in a problem. Throws one
 * `SimLlmOptionsError` listing every problem.
 */
export function resolveSimLlmOptions(
  raw: Partial<Record<SimLlmOptionName, unknown>>,
  describe: (name: SimLlmOptionName) => string = (name) => name,
): ResolvedSimLlmOptions {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(SIM_LLM_OPTIONS) as SimLlmOptionName[]) {
    const option = SIM_LLM_OPTIONS[name];
    const value = raw[name] ?? option.default;
    const parsed = (option.schema as z.ZodType).safeParse(value);
    if (parsed.success) out[name] = parsed.data;
    else problems.push(`${describe(name)} = ${JSON.stringify(value)}: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  }
  if (out.fault === "none") {
    for (const name of ["faultCount", "faultRate"] as const) {
      if (raw[name] !== undefined && String(raw[name]) !== SIM_LLM_OPTIONS[name].default)
        problems.push(`${describe(name)} needs a fault other than none`);
    }
  }
  if (problems.length > 0) throw new SimLlmOptionsError(problems);
  return Object.freeze(out) as ResolvedSimLlmOptions;
}
