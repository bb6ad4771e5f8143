import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

/** A provider's circuit breaker as the metrics read it at each scrape. */
export interface BreakerReading {
  readonly provider: string;
  /** True until a call succeeds through it again (open, or half-open waiting for its trial call). */
  readonly open: boolean;
  /** Times it opened since the process started. */
  readonly opens: number;
}

/** The process's Prometheus metrics; one instance shared by its gateway and worker. */
export class Metrics {
  readonly registry = new Registry();
  readonly answersStarted = new Counter({
    name: "lifeline_answers_started_total",
    help: "Attempts at an answer that began (a takeover or retry counts again).",
    registers: [this.registry],
  });
  readonly answersFinished = new Counter({
    name: "lifeline_answers_finished_total",
    help: "Answers that reached a terminal entry, by outcome.",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly tokensAppended = new Counter({
    name: "lifeline_tokens_appended_total",
    help: "Model tokens appended to logs.",
    registers: [this.registry],
  });
  readonly appends = new Counter({
    name: "lifeline_appends_total",
    help: "Append calls by result.",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly repairs = new Counter({
    name: "lifeline_repaired_entries_total",
    help: "Entries a worker wrote again after a failover dropped them.",
    registers: [this.registry],
  });
  readonly takeovers = new Counter({
    name: "lifeline_takeovers_total",
    help: "Jobs claimed after their previous holder's lease expired.",
    registers: [this.registry],
  });
  readonly openStreams = new Gauge({
    name: "lifeline_open_streams",
    help: "Event streams open to clients now.",
    registers: [this.registry],
  });
  readonly resumes = new Counter({
    name: "lifeline_resumes_total",
    help: "Event streams opened with a cursor past the start.",
    registers: [this.registry],
  });
  readonly resets = new Counter({
    name: "lifeline_resets_total",
    help: "Streams answered with reset because continuity after the cursor could not be vouched for.",
    registers: [this.registry],
  });
  readonly archivedLogs = new Counter({
    name: "lifeline_archive_logs_total",
    help: "Finished logs the archiver handled, by result: archived (copied), present (archived already), lost (gone from the engine before it could copy them).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly archiveFailures = new Counter({
    name: "lifeline_archive_failures_total",
    help: "Archiver steps that failed (the archive or the engine did not answer) and were tried again.",
    registers: [this.registry],
  });

  /** The worker's coalescing window, read at each scrape (none in a process without a worker). */
  #coalesceWindow: (() => number) | undefined;
  /** The worker's breakers, read at each scrape (none in a process without a worker). */
  #breakers: () => readonly BreakerReading[] = () => [];
  readonly breakerOpen = new Gauge({
    name: "lifeline_breaker_open",
    help: "1 while a provider's circuit breaker is not closed (open, or half-open until a call succeeds), else 0.",
    labelNames: ["provider"] as const,
    registers: [this.registry],
    collect: () => {
      this.breakerOpen.reset();
      for (const b of this.#breakers()) this.breakerOpen.set({ provider: b.provider }, b.open ? 1 : 0);
    },
  });
  readonly breakerOpens = new Counter({
    name: "lifeline_breaker_opens_total",
    help: "Times a provider's circuit breaker opened (a failed trial call opens it again).",
    labelNames: ["provider"] as const,
    registers: [this.registry],
    collect: () => {
      // The breakers count their own openings; the counter shows those counts as they stand.
      this.breakerOpens.reset();
      for (const b of this.#breakers()) this.breakerOpens.inc({ provider: b.provider }, b.opens);
    },
  });

  /** Reads the worker's breakers at each scrape from `source`. */
  watchBreakers(source: () => readonly BreakerReading[]): void {
    this.#breakers = source;
  }

  /**
   * Exports the worker's coalescing window as `lifeline_coalesce_window_ms`, read from `source` at
   * each scrape: the configured window while the worker keeps up, a wider one while its event loop
   * is saturated (decision 018). Registered only in a process with a worker, so that a gateway's
   * scrape shows no window rather than a window of 0.
   */
  watchCoalesceWindow(source: () => number): void {
    const registered = this.#coalesceWindow !== undefined;
    this.#coalesceWindow = source;
    if (registered) return;
    const read = (): number => this.#coalesceWindow!();
    new Gauge({
      name: "lifeline_coalesce_window_ms",
      help: "The worker's coalescing window now, in ms: the configured one, or wider (up to 400) while its event loop is saturated.",
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "lifeline_" });
  }
}
