import { ProviderError } from "../provider-error.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../provider.ts";

/** Limits on one model call; every one is in milliseconds. */
export interface Timeouts {
  /** Until the provider accepts the call (its stream opens). @defaultValue 10000 */
  readonly connectMs: number;
  /** Until the first token. @defaultValue 30000 */
  readonly firstTokenMs: number;
  /** Between two events once tokens flow: a stalled stream is cut after this. @defaultValue 20000 */
  readonly idleMs: number;
  /** For the whole call. @defaultValue 600000 */
  readonly totalMs: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 10_000, firstTokenMs: 30_000, idleMs: 20_000, totalMs: 600_000 };

/**
 * Streams `call` from `provider` under `timeouts`. When one runs out, the upstream request is
 * aborted and the stream throws a retryable `ProviderError` of kind `timeout` naming which one.
 */
export async function* streamWithTimeouts(provider: ModelProvider, call: ModelCall, timeouts: Timeouts): AsyncIterable<ModelEvent> {
  const upstream = new AbortController();
  const forward = (): void => upstream.abort(call.signal.reason);
  if (call.signal.aborted) forward();
  call.signal.addEventListener("abort", forward, { once: true });
  let expired: { which: string; ms: number } | undefined;
  const expire = (which: string, ms: number): void => {
    expired ??= { which, ms };
    upstream.abort(new ProviderError("timeout", `the ${which} timeout (${ms} ms) ran out`, { retryable: true, provider: provider.name }));
  };
  const phase = new PhaseDeadline(expire);
  const total = setTimeout(() => expire("total", timeouts.totalMs), timeouts.totalMs);
  let opened = false;
  let tokens = 0;
  phase.start("connect", timeouts.connectMs);
  try {
    for await (const event of provider.stream({ ...call, signal: upstream.signal })) {
      if (event.type === "open") opened = true;
      if (event.type === "token") {
        tokens += 1;
        opened = true;
      }
      // Waiting for the consumer is not the provider's time.
      phase.pause();
      if (event.type !== "open") yield event;
      if (tokens > 0) phase.start("idle", timeouts.idleMs);
      else if (opened) phase.start("first-token", timeouts.firstTokenMs);
      else phase.start("connect", timeouts.connectMs);
    }
  } catch (error) {
    if (expired && !call.signal.aborted) {
      throw new ProviderError("timeout", `the ${expired.which} timeout (${expired.ms} ms) ran out`, {
        retryable: true,
        provider: provider.name,
      });
    }
    throw error;
  } finally {
    phase.stop();
    clearTimeout(total);
    call.signal.removeEventListener("abort", forward);
    if (!upstream.signal.aborted) upstream.abort(new Error("stream closed"));
  }
}

/**
 * The deadline of the current phase (connect, first token, idle), restarted at every event with
 * one timer that is re-armed only when it fires early or a shorter deadline comes: a stream of
 * thousands of tokens a second costs a clock read per token, not a timer.
 */
class PhaseDeadline {
  #which = "";
  #ms = 0;
  #deadline = Infinity;
  #paused = false;
  #timer: NodeJS.Timeout | undefined;
  #timerDue = Infinity;

  constructor(private readonly expire: (which: string, ms: number) => void) {}

  start(which: string, ms: number): void {
    this.#which = which;
    this.#ms = ms;
    this.#paused = false;
    this.#deadline = performance.now() + ms;
    if (this.#deadline < this.#timerDue) this.#arm(this.#deadline);
  }

  /** While the consumer holds an event, no phase runs. */
  pause(): void {
    this.#paused = true;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Infinity;
  }

  #arm(due: number): void {
    clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(() => this.#check(), Math.max(0, due - performance.now()));
  }

  #check(): void {
    this.#timer = undefined;
    this.#timerDue = Infinity;
    if (this.#paused) return; // re-armed by the next start
    const left = this.#deadline - performance.now();
    if (left <= 0) this.expire(this.#which, this.#ms);
    else this.#arm(this.#deadline);
  }
}
