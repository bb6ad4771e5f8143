import { parseArgs } from "node:util";
import { SIM_LLM_OPTIONS, SimLlmOptionsError, resolveSimLlmOptions, type ResolvedSimLlmOptions, type SimLlmOptionName } from "./options.ts";
import { SIM_FAULT_HEADER } from "./faults.ts";

const NAMES = Object.keys(SIM_LLM_OPTIONS) as SimLlmOptionName[];
const BY_FLAG = new Map<string, SimLlmOptionName>(NAMES.map((name) => [SIM_LLM_OPTIONS[name].flag, name]));

/**
 * Reads `lifeline sim-llm` flags, then the environment, then the defaults. Unknown flags, flags
 * without a value, stray arguments and bad values all go into one `SimLlmOptionsError`.
 */
export function parseSimLlmFlags(args: readonly string[], env: NodeJS.ProcessEnv): ResolvedSimLlmOptions {
  const problems: string[] = [];
  const flags = new Map<SimLlmOptionName, string>();
  const spec = Object.fromEntries(NAMES.map((name) => [SIM_LLM_OPTIONS[name].flag, { type: "string" as const }]));
  // Not `strict`: it stops at the first bad flag, and the promise is one error listing them all.
  const { tokens } = parseArgs({ args: [...args], options: spec, strict: false, allowPositionals: true, tokens: true });
  for (const token of tokens) {
    if (token.kind === "positional") problems.push(`unexpected argument "${token.value}"`);
    if (token.kind !== "option") continue;
    const name = BY_FLAG.get(token.name);
    if (!name) problems.push(`unknown flag ${token.rawName}`);
    else if (token.value === undefined || (!token.inlineValue && token.value.startsWith("--")))
      problems.push(`${token.rawName} needs a value`);
    else flags.set(name, token.value);
  }
  const raw: Partial<Record<SimLlmOptionName, string>> = {};
  for (const name of NAMES) {
    const fromEnv = env[SIM_LLM_OPTIONS[name].env];
    const value = flags.get(name) ?? (fromEnv === "" ? undefined : fromEnv);
    if (value !== undefined) raw[name] = value;
  }
  const source = (name: SimLlmOptionName): string =>
    flags.has(name)
      ? `--${SIM_LLM_OPTIONS[name].flag}`
      : raw[name] !== undefined
        ? SIM_LLM_OPTIONS[name].env
        : `--${SIM_LLM_OPTIONS[name].flag} (default)`;
  try {
    const options = resolveSimLlmOptions(raw, source);
    if (problems.length > 0) throw new SimLlmOptionsError(problems);
    return options;
  } catch (error) {
    if (error instanceof SimLlmOptionsError) throw new SimLlmOptionsError([...problems, ...error.problems]);
    throw error;
  }
}

/** `lifeline sim-llm --help`. */
export function simLlmUsage(): string {
  const rows = NAMES.map((name) => {
    const o = SIM_LLM_OPTIONS[name];
    return [`--${o.flag}, ${o.env}`, `${o.doc} (default: ${o.default || "no limit"})`] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  return [
    "Usage: lifeline sim-llm [options]",
    "",
    "The built-in simulator over real provider wire formats, with fault injection:",
    "  POST /v1/chat/completions (OpenAI), POST /v1/messages (Anthropic), GET /v1/models,",
    "  GET /healthz, GET /stats. A trailing assistant message is a prefix to continue.",
    "",
    `One request can choose its own fault with the header`,
    `  ${SIM_FAULT_HEADER}: <fault>[;after=N][;status=N][;delay=MS][;retry-after=S]`,
    "",
    "Options (flag, environment variable):",
    ...rows.map(([left, right]) => `  ${left.padEnd(width + 2)}${right}`),
  ].join("\n");
}
