import type { ModelCall } from "../../src/llm/provider.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { wallNow, type AnswerTrace } from "./protocol.ts";

interface Emits {
  /** Wall-clock time each token left the model, in emit order. */
  readonly times: number[];
  /** The answer's text length right after each token. */
  readonly ends: number[];
}

/** Records, per answer, when each token left the model (the `onToken` hook of the sim). */
export class EmitLog {
  readonly #byContent = new Map<string, Emits>();

  readonly onToken = (call: ModelCall, text: string): void => {
    const now = wallNow();
    const content = call.request.messages[0]?.content ?? "";
    let emits = this.#byContent.get(content);
    if (!emits) this.#byContent.set(content, (emits = { times: [], ends: [] }));
    emits.times.push(now);
    emits.ends.push((emits.ends[emits.ends.length - 1] ?? call.prefix.length) + text.length);
  };

  get(content: string): Emits | undefined {
    return this.#byContent.get(content);
  }
}

export interface Percentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly samples: number;
}

/** Nearest-rank percentiles. */
export function percentiles(values: number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN, samples: sorted.length };
}

export interface PhaseAnalysis {
  readonly answers: number;
  /** Tokens whose text reached a client. */
  readonly tokens: number;
  /** Delta frames clients received: tokens / deltaFrames is how much coalescing merged. */
  readonly deltaFrames: number;
  /** Model emits -> client receives, for tokens emitted after the client's stream was open. */
  readonly latency: Percentiles;
  /** Tokens emitted before the client's stream opened, delivered as catch-up from the log; not in `latency`. */
  readonly catchUpTokens: number;
  /** First request of the answer -> first delta received. */
  readonly firstToken: Percentiles;
  /** First request of the answer -> the model emitted its first token (queueing before the model runs, plus one token interval). */
  readonly firstEmit: Percentiles;
  /** First request of the answer -> the SSE response headers arrived (the POST, then the GET, in embedded mode). */
  readonly subscribe: Percentiles;
  /** Answers whose final text is not the sim's uninterrupted text, or that ended without `completed`. */
  readonly mismatches: number;
  /** Answers with a transport or protocol problem (HTTP error, gap, repeat, reset). */
  readonly problems: number;
  /** Answers with a mismatch, a problem or both. */
  readonly wrong: number;
  readonly problemSamples: string[];
}

/** The analysis as both benches record it in a phase, from `latencyMs` to `problemSamples`, in this order. */
export function deliveryFields(analysis: PhaseAnalysis): {
  latencyMs: Percentiles;
  catchUpTokens: number;
  firstTokenMs: Percentiles;
  firstEmitMs: Percentiles;
  subscribeMs: Percentiles;
  mismatches: number;
  problems: number;
  wrong: number;
  problemSamples: string[];
} {
  return {
    latencyMs: analysis.latency,
    catchUpTokens: analysis.catchUpTokens,
    firstTokenMs: analysis.firstToken,
    firstEmitMs: analysis.firstEmit,
    subscribeMs: analysis.subscribe,
    mismatches: analysis.mismatches,
    problems: analysis.problems,
    wrong: analysis.wrong,
    problemSamples: analysis.problemSamples,
  };
}

/**
 * Joins what clients received with what the model emitted. Each received delta covers a range of
 * the answer's text; every token whose end falls in that range was delivered at that moment.
 * `clockOffset` is the client fleet's clock minus this process's clock.
 */
export function analyse(traces: readonly AnswerTrace[], emits: EmitLog, maxTokens: number, clockOffset: number): PhaseAnalysis {
  const latencies: number[] = [];
  const firstToken: number[] = [];
  const firstEmit: number[] = [];
  const subscribe: number[] = [];
  let tokens = 0;
  let deltaFrames = 0;
  let catchUpTokens = 0;
  let mismatches = 0;
  let problems = 0;
  let wrong = 0;
  const problemSamples: string[] = [];
  for (const trace of traces) {
    const expected = simTokens({ messages: [{ role: "user", content: trace.content }], seed: trace.seed, max_tokens: maxTokens }).join("");
    const mismatch = trace.text !== expected || trace.terminal !== "completed";
    if (mismatch) mismatches++;
    if (mismatch || trace.problem !== undefined) wrong++;
    if (trace.problem !== undefined) {
      problems++;
      if (problemSamples.length < 5) problemSamples.push(trace.problem);
    }
    subscribe.push(trace.connectedAt - trace.startedAt);
    const emitted = emits.get(trace.content);
    if (!emitted) continue;
    const firstEmitted = emitted.times[0];
    if (firstEmitted !== undefined) firstEmit.push(firstEmitted - (trace.startedAt - clockOffset));
    const connectedAt = trace.connectedAt - clockOffset;
    let next = 0;
    for (let i = 0; i < trace.received.length; i += 2) {
      const receivedAt = (trace.received[i] ?? Number.NaN) - clockOffset;
      const end = trace.received[i + 1] ?? 0;
      while (next < emitted.ends.length && (emitted.ends[next] ?? Infinity) <= end) {
        const emittedAt = emitted.times[next] ?? Number.NaN;
        if (emittedAt >= connectedAt) latencies.push(receivedAt - emittedAt);
        else catchUpTokens++;
        next++;
      }
    }
    tokens += next;
    deltaFrames += trace.received.length / 2;
    const first = trace.received[0];
    if (first !== undefined) firstToken.push(first - trace.startedAt);
  }
  return {
    answers: traces.length,
    tokens,
    deltaFrames,
    latency: percentiles(latencies),
    catchUpTokens,
    firstToken: percentiles(firstToken),
    firstEmit: percentiles(firstEmit),
    subscribe: percentiles(subscribe),
    mismatches,
    problems,
    wrong,
    problemSamples,
  };
}
