import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

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

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "lifeline_" });
  }
}
