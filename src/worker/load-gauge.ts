import { performance } from "node:perf_hooks";

/** The share of time the event loop may be busy before the process counts as loaded. */
const BUSY_UTILIZATION = 0.6;
const SAMPLE_MS = 250;

/**
 * Whether this process's event loop is busy, from its utilization over the last quarter second.
 * One per worker; sampling costs one call per interval, whatever the number of answers.
 */
export class LoadGauge {
  #last = performance.eventLoopUtilization();
  #busy = false;
  readonly #timer: NodeJS.Timeout;

  constructor() {
    this.#timer = setInterval(() => {
      const now = performance.eventLoopUtilization();
      this.#busy = performance.eventLoopUtilization(now, this.#last).utilization > BUSY_UTILIZATION;
      this.#last = now;
    }, SAMPLE_MS);
    this.#timer.unref();
  }

  get busy(): boolean {
    return this.#busy;
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
