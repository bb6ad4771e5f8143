/**
 * The cost of reading a provider's stream: the lean OpenAI-compatible reader Lifeline ships
 * (undici, one SSE parser, one `JSON.parse` per chunk) against the AI SDK's
 * `@ai-sdk/openai-compatible` model driven at `doStream` (fetch, web streams, zod-checked chunks),
 * the path it replaced. Both read the same `lifeline sim-llm` (its own process, streaming as fast
 * as it can) in interleaved repetitions; the figure is the reading process's CPU per token.
 *
 *   node --import tsx bench/provider-read.ts [--answers 20] [--tokens 5000] [--reps 3] [--out bench/results/provider-read.json]
 *     [--wire openai-compatible | anthropic]   the Messages API against `@ai-sdk/anthropic`'s model
 *
 * See docs/decisions/017-lean-openai-stream-reader.md and 075-lean-anthropic-stream-reader.md.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import type { ModelCall, ModelProvider } from "../src/llm/provider.ts";
import { anthropicPrefill, createAnthropicProvider } from "../src/llm/providers/anthropic.ts";
import { createOpenAICompatibleProvider } from "../src/llm/providers/openai-compatible.ts";
import { verbatimPrefill } from "../src/llm/providers/prompt.ts";
import { streamSdkModel } from "./support/sdk-stream.ts";
import { startSimLlmProcess } from "../test/support/sim-llm-process.ts";
import { machineInfo, median, writeResults } from "./support/report.ts";

const { values: args } = parseArgs({
  options: {
    answers: { type: "string", default: "20" },
    tokens: { type: "string", default: "5000" },
    reps: { type: "string", default: "3" },
    out: { type: "string", default: "bench/results/provider-read.json" },
    wire: { type: "string", default: "openai-compatible" },
  },
});
if (args.wire !== "openai-compatible" && args.wire !== "anthropic") throw new Error("--wire: openai-compatible or anthropic");
const anthropic = args.wire === "anthropic";
const answers = Number(args.answers);
const tokensPerAnswer = Number(args.tokens);
const reps = Number(args.reps);

function sdkReader(baseUrl: string): ModelProvider {
  if (anthropic) {
    const model = createAnthropic({ name: "sdk", baseURL: baseUrl, apiKey: "" }).messages("sim");
    return {
      name: "sdk",
      stream: (call) =>
        streamSdkModel(
          {
            provider: "sdk",
            secret: undefined,
            model,
            prefill: anthropicPrefill,
            callOptions: () => ({ maxOutputTokens: call.request.max_tokens ?? 4096 }),
          },
          call,
        ),
    };
  }
  const model = createOpenAICompatible({ name: "sdk", baseURL: baseUrl, includeUsage: true }).chatModel("sim");
  return {
    name: "sdk",
    stream: (call) => streamSdkModel({ provider: "sdk", secret: undefined, model, prefill: verbatimPrefill }, call),
  };
}

function leanReader(baseUrl: string): ModelProvider {
  return anthropic
    ? createAnthropicProvider({ name: "lean", baseUrl, model: "sim" })
    : createOpenAICompatibleProvider({ name: "lean", baseUrl, model: "sim" });
}

interface Phase {
  readonly rep: number;
  readonly reader: string;
  readonly tokens: number;
  readonly wallMs: number;
  readonly cpuUsPerToken: number;
  readonly tokensPerSecond: number;
}

async function measure(provider: ModelProvider, rep: number): Promise<Phase> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  let tokens = 0;
  await Promise.all(
    Array.from({ length: answers }, async (_, i) => {
      const call: ModelCall = {
        request: { model: "sim", messages: [{ role: "user", content: `answer ${rep}-${i}` }], max_tokens: tokensPerAnswer },
        prefix: "",
        signal: new AbortController().signal,
      };
      for await (const event of provider.stream(call)) if (event.type === "token") tokens += event.tokens ?? 1;
    }),
  );
  const used = process.cpuUsage(cpu);
  const wallMs = performance.now() - started;
  if (tokens !== answers * tokensPerAnswer) throw new Error(`${provider.name}: ${tokens} tokens, expected ${answers * tokensPerAnswer}`);
  return {
    rep,
    reader: provider.name,
    tokens,
    wallMs,
    cpuUsPerToken: (used.user + used.system) / tokens,
    tokensPerSecond: (tokens / wallMs) * 1000,
  };
}

const sim = await startSimLlmProcess(["--tokens-per-second", "max"]);
try {
  const url = sim.url;
  const readers = [sdkReader(`${url}/v1`), leanReader(`${url}/v1`)];
  await measure(readers[1]!, 0); // warm both paths up
  await measure(readers[0]!, 0);
  const phases: Phase[] = [];
  for (let rep = 1; rep <= reps; rep++) for (const reader of readers) phases.push(await measure(reader, rep));
  const byReader = (name: string): Phase[] => phases.filter((p) => p.reader === name);
  const ratios = byReader("sdk").map((sdk, i) => sdk.cpuUsPerToken / byReader("lean")[i]!.cpuUsPerToken);
  const summary = {
    sdkCpuUsPerToken: median(byReader("sdk").map((p) => p.cpuUsPerToken)),
    leanCpuUsPerToken: median(byReader("lean").map((p) => p.cpuUsPerToken)),
    sdkOverLean: median(ratios),
    sdkTokensPerSecond: median(byReader("sdk").map((p) => p.tokensPerSecond)),
    leanTokensPerSecond: median(byReader("lean").map((p) => p.tokensPerSecond)),
  };
  writeResults(args.out, { machine: machineInfo(), wire: args.wire, answers, tokensPerAnswer, reps, phases, summary });
  console.log(JSON.stringify(summary, null, 2));
} finally {
  await sim.stop();
}
