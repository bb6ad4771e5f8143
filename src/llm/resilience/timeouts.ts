import { ProviderError } from "../provider-error.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../provider.ts";
import { runInSlice } from "../../observability/turns.ts";

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
 *
 * An iterator of its own rather than an async generator around the provider's: one layer of
 * promises less for every token.
 */
export function streamWithTimeouts(provider: ModelProvider, call: ModelCall, timeouts: Timeouts): AsyncIterable<ModelEvent> {
  return { [Symbol.asyncIterator]: () => new TimedStream(provider, call, timeouts) };
}

class TimedStream implements AsyncIterator<ModelEvent> {
  readonly #provider: ModelProvider;
  readonly #call: ModelCall;
  readonly #timeouts: Timeouts;
  readonly #upstream = new AbortController();
  readonly #phase: PhaseDeadline;
  #events: AsyncIterator<ModelEvent> | undefined;
  #total: NodeJS.Timeout | undefined;
  #expired: { which: string; ms: number } | undefined;
  #opened = false;
  #tokens = 0;
  #closed = false;

  constructor(provider: ModelProvider, call: ModelCall, timeouts: Timeouts) {
    this.#provider = provider;
    this.#call = call;
    this.#timeouts = timeouts;
    this.#phase = new PhaseDeadline((which, ms) => this.#expire(which, ms, () => this.#phase.due()));
  }

  /** The caller's signal aborted: so is the upstream request. */
  handleEvent(): void {
    this.#upstream.abort(this.#call.signal.reason);
  }

  async next(): Promise<IteratorResult<ModelEvent>> {
    if (this.#closed) return { done: true, value: undefined };
    try {
      if (this.#events === undefined) {
        if (this.#call.signal.aborted) this.handleEvent();
        this.#call.signal.addEventListener("abort", this, { once: true });
        this.#total = setTimeout(() => this.#expire("total", this.#timeouts.totalMs, () => true), this.#timeouts.totalMs);
        this.#events = this.#provider.stream({ ...this.#call, signal: this.#upstream.signal })[Symbol.asyncIterator]();
      }
      // Waiting for the consumer is not the provider's time: the phase runs only while this waits.
      if (this.#tokens > 0) this.#phase.start("idle", this.#timeouts.idleMs);
      else if (this.#opened) this.#phase.start("first-token", this.#timeouts.firstTokenMs);
      else this.#phase.start("connect", this.#timeouts.connectMs);
      for (;;) {
        const step = await this.#events.next();
        if (step.done) {
          this.#close();
          return step;
        }
        const event = step.value;
        if (event.type === "open") {
          this.#opened = true;
          this.#phase.start("first-token", this.#timeouts.firstTokenMs);
          continue;
        }
        if (event.type === "token") {
          this.#tokens += event.tokens ?? 1;
          this.#opened = true;
        }
        this.#phase.pause();
        return { done: false, value: event };
      }
    } catch (error) {
      this.#close();
      if (this.#expired && !this.#call.signal.aborted) {
        throw new ProviderError("timeout", `the ${this.#expired.which} timeout (${this.#expired.ms} ms) ran out`, {
          retryable: true,
          provider: this.#provider.name,
        });
      }
      throw error;
    }
  }

  /** Closes the provider's stream first (a finished response keeps its socket), then the timers and the upstream request. */
  async return(): Promise<IteratorResult<ModelEvent>> {
    if (!this.#closed) {
      try {
        await this.#events?.return?.();
      } finally {
        this.#close();
      }
    }
    return { done: true, value: undefined };
  }

  /**
   * Cuts the call for the timeout `which`, while `stillDue()` says it has run out: when a model
   * stalls every stream at once, their timers run out in one phase of the event loop, and each abort
   * (a socket closed, its error made) waits for a slice (decision 063). A stream whose phase moved
   * on meanwhile (an event came, or the consumer holds one) is not cut: its phase's timer is armed
   * again.
   */
  #expire(which: string, ms: number, stillDue: () => boolean): void {
    runInSlice(() => {
      if (this.#closed || !stillDue()) return;
      this.#expired ??= { which, ms };
      this.#upstream.abort(
        new ProviderError("timeout", `the ${which} timeout (${ms} ms) ran out`, { retryable: true, provider: this.#provider.name }),
      );
    });
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#phase.stop();
    clearTimeout(this.#total);
    this.#call.signal.removeEventListener("abort", this);
    if (!this.#upstream.signal.aborted) this.#upstream.abort(new Error("stream closed"));
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

  /** Whether the current phase runs and its deadline has passed. */
  due(): boolean {
    return !this.#paused && performance.now() >= this.#deadline;
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
