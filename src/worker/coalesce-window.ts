import { performance, type EventLoopUtilization } from "node:perf_hooks";

/** How often the window looks at how busy the process is. */
const SAMPLE_MS = 250;
/** Busier than this over two samples in a row (the share of time the event loop was not idle): the window widens. */
const BUSY = 0.9;
/** Less busy than this: it narrows back to the configured window (between the two, a grown one steps down). */
const EASED = 0.6;
/** The window of a saturated worker, at least: tokens of one answer that come closer than this are merged. */
const SATURATED_MS = 100;
/** The widest it grows while the saturation lasts: it doubles after every two more busy samples. */
const MAX_SATURATED_MS = 400;
/**
 * An answer holding this many tokens is flushed on the saturated window (100 ms), however wide the
 * window has grown: the wider window is for slow answers, whose few tokens cost an entry each; a
 * fast one already merges this many, and a reader that lets its model run only so far ahead (a
 * closed loop) is not held for a whole wide window.
 */
const FILLED_TOKENS = 32;

/**
 * The coalescing window of a worker's runs (decision 018): the configured one while the process
 * keeps up, a wider one while its event loop is saturated: 100 ms, then doubling up to 400 ms while
 * the saturation lasts, and halving back towards 100 ms while the loop is busy but not saturated (an
 * answer holding 32 tokens keeps 100 ms: {@link windowFor}). Past
 * saturation every entry costs the same work in the worker, Redis and each gateway however few
 * tokens it carries, so merging more of a slow answer's tokens makes room for more answers instead
 * of a queue that delays every token. A window of 0 (one entry per piece the provider hands over) is left as it is.
 */
export class CoalesceWindow {
  readonly #configuredMs: number;
  /** The narrowest window of a saturated worker: 100 ms, or the configured window when wider. */
  readonly #saturatedMs: number;
  #ms: number;
  #timer: NodeJS.Timeout | undefined;
  #last: EventLoopUtilization | undefined;
  /** Samples in a row at or above {@link BUSY}: a burst (a hundred answers starting at once) is not saturation. */
  #busySamples = 0;
  /** Samples in a row between {@link EASED} and {@link BUSY}: a window wider than it needs steps down. */
  #calmSamples = 0;

  constructor(configuredMs: number) {
    this.#configuredMs = configuredMs;
    this.#saturatedMs = Math.max(configuredMs, SATURATED_MS);
    this.#ms = configuredMs;
  }

  /** The window now, in ms. */
  get ms(): number {
    return this.#ms;
  }

  /** The window for an answer holding `heldTokens` tokens: {@link ms}, or 100 ms once it holds {@link FILLED_TOKENS}. */
  windowFor(heldTokens: number): number {
    return heldTokens >= FILLED_TOKENS ? Math.min(this.#ms, this.#saturatedMs) : this.#ms;
  }

  start(): void {
    if (this.#configuredMs <= 0 || this.#timer) return;
    this.#last = performance.eventLoopUtilization();
    this.#timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#ms = this.#configuredMs;
  }

  /** Looks at how busy the event loop was since the last look (`utilization` given: a test's). */
  sample(utilization?: number): void {
    const now = performance.eventLoopUtilization();
    const busy = utilization ?? performance.eventLoopUtilization(now, this.#last).utilization;
    this.#last = now;
    if (this.#configuredMs <= 0) return;
    this.#busySamples = busy >= BUSY ? this.#busySamples + 1 : 0;
    this.#calmSamples = busy >= EASED && busy < BUSY ? this.#calmSamples + 1 : 0;
    if (this.#busySamples === 2) this.#ms = Math.max(this.#ms, this.#saturatedMs);
    else if (this.#busySamples > 2 && this.#busySamples % 2 === 0) this.#ms = Math.max(this.#ms, Math.min(this.#ms * 2, MAX_SATURATED_MS));
    else if (busy < EASED) this.#ms = this.#configuredMs;
    // Below saturation on a grown window: half as wide after every two such samples, down to the
    // saturated one, so the window settles at the narrowest that keeps the loop under saturation.
    else if (this.#calmSamples > 0 && this.#calmSamples % 2 === 0 && this.#ms > this.#saturatedMs) {
      this.#ms = Math.max(this.#ms / 2, this.#saturatedMs);
    }
  }
}
