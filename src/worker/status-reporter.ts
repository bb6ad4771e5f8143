import type { ReportedBreaker, WorkerStatusStore } from "../engine/workers/port.ts";
import type { CircuitBreaker } from "../llm/resilience/circuit-breaker.ts";
import type { Logger } from "../observability/logger.ts";

/** How often a worker reports. */
export const REPORT_EVERY_MS = 2_000;
/** How long a report stands: a worker silent for this long (killed, cut off) is no longer listed. */
export const REPORT_TTL_MS = 10_000;
/** The longest a stop waits for the last report and its withdrawal. */
const STOP_WAIT_MS = 1_000;

export interface StatusReporterOptions {
  readonly store: WorkerStatusStore;
  readonly worker: string;
  /** The leases the worker holds now. */
  readonly leases: () => readonly { id: string; fence: number; claimedAt: number }[];
  /** The worker's providers' breakers. */
  readonly breakers: () => readonly { provider: string; breaker: CircuitBreaker }[];
  readonly logger: Logger;
  /** @defaultValue {@link REPORT_EVERY_MS} */
  readonly everyMs?: number;
}

/**
 * Reports a worker's leases and breakers to the worker status store every few seconds (decision
 * 041), so that `/ops` shows every worker from any gateway. A report that fails is logged and the
 * next one tries again: the store is a picture for people, never in the path of an answer.
 */
export class StatusReporter {
  readonly #options: StatusReporterOptions;
  #timer: NodeJS.Timeout | undefined;
  #reporting: Promise<void> | undefined;
  #failing = false;

  constructor(options: StatusReporterOptions) {
    this.#options = options;
  }

  /** Reports now, then every `everyMs`. */
  start(): void {
    void this.#report();
    this.#timer ??= setInterval(() => void this.#report(), this.#options.everyMs ?? REPORT_EVERY_MS);
    this.#timer.unref();
  }

  /**
   * Stops reporting and withdraws the report: a worker that stops is gone from `/ops` at once. A
   * store that does not answer (Redis down: its client retries for tens of seconds) holds the stop
   * for {@link STOP_WAIT_MS} at most; the report then expires by itself.
   */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    const withdraw = (async () => {
      await this.#reporting;
      await this.#options.store.remove(this.#options.worker).catch(() => undefined);
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([withdraw, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  #report(): Promise<void> {
    // One at a time: a slow store gets one report in flight, not a pile of them.
    if (this.#reporting) return this.#reporting;
    const { store, worker, leases, breakers, logger } = this.#options;
    const status = {
      worker,
      seenAt: new Date().toISOString(),
      leases: leases().map((l) => ({ id: l.id, fence: l.fence, since: new Date(l.claimedAt).toISOString() })),
      breakers: breakers().map(({ provider, breaker }) => reportOf(provider, breaker)),
    };
    this.#reporting = store
      .report(status, REPORT_TTL_MS)
      .then(() => {
        if (this.#failing) logger.info({ worker }, "worker status reported again");
        this.#failing = false;
      })
      .catch((error: unknown) => {
        if (!this.#failing) logger.warn({ err: error, worker }, "could not report the worker's status; trying again");
        this.#failing = true;
      })
      .finally(() => (this.#reporting = undefined));
    return this.#reporting;
  }
}

/** A breaker as a report shows it. */
export function reportOf(provider: string, breaker: CircuitBreaker): ReportedBreaker {
  const state = breaker.state === "halfOpen" ? "half-open" : breaker.state;
  const openedAt = breaker.openedAt;
  return openedAt === undefined ? { provider, state } : { provider, state, openedAt: new Date(openedAt).toISOString() };
}
