import { setTimeout as sleep } from "node:timers/promises";
import type { ModelCall, ModelEvent, ModelProvider } from "../provider.ts";
import { SIM_DEFAULT_MAX_TOKENS, countPromptTokens, simContinuation } from "./sim-text.ts";

export interface SimOptions {
  /** Tokens per second. @defaultValue 30 */
  readonly tokensPerSecond?: number;
  /** Called as each token leaves the model, for latency measurements. */
  readonly onToken?: (call: ModelCall, text: string) => void;
}

/**
 * The built-in deterministic model (DESIGN §5): the same messages and seed give the same text,
 * `max_tokens` tokens long, paced at `tokensPerSecond`, continuing any prefix of its own answer
 * exactly.
 */
export class SimProvider implements ModelProvider {
  readonly name = "sim";
  readonly #intervalMs: number;
  readonly #onToken: SimOptions["onToken"];

  constructor(options: SimOptions = {}) {
    this.#intervalMs = 1000 / (options.tokensPerSecond ?? 30);
    this.#onToken = options.onToken;
  }

  async *stream(call: ModelCall): AsyncIterable<ModelEvent> {
    const tokens = simContinuation(call.request, call.prefix);
    const started = performance.now();
    for (let i = 0; i < tokens.length; i++) {
      // Absolute schedule: pacing does not drift with timer lateness.
      const due = started + (i + 1) * this.#intervalMs - performance.now();
      if (due > 0) await sleep(due, undefined, { signal: call.signal });
      else call.signal.throwIfAborted();
      const text = tokens[i] ?? "";
      this.#onToken?.(call, text);
      yield { type: "token", text };
    }
    yield {
      type: "finish",
      finishReason: "stop",
      usage: {
        promptTokens: countPromptTokens(call.request.messages),
        completionTokens: call.request.max_tokens ?? SIM_DEFAULT_MAX_TOKENS,
      },
    };
  }
}
