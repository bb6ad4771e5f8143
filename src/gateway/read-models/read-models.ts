import { Gauge } from "prom-client";
import type { Engine } from "../../engine/port.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { MemoryReadModelStore } from "../../projections/store/memory.ts";
import type { ReadModelStore } from "../../projections/store/port.ts";
import { Projector } from "./projector.ts";

/** How long an open answer may go without an entry before it counts as stuck, unless configured (a model call's default idle timeout). */
export const DEFAULT_STUCK_AFTER_MS = 20_000;

/** What a gateway is given for its read models (decision 037). */
export interface ReadModelOptions {
  /** Where they are kept (sqlite, PostgreSQL); the caller opens and closes it. */
  readonly store: ReadModelStore;
  /** `LIFELINE_STUCK_AFTER_MS`. */
  readonly stuckAfterMs: number;
}

const STUCK = "lifeline_stuck_answers";

/** The `lifeline_stuck_answers` gauge on the process's registry (one per registry, however many gateways share it). */
function stuckGauge(metrics: Metrics): Gauge {
  const existing = metrics.registry.getSingleMetric(STUCK);
  if (existing) return existing as Gauge;
  return new Gauge({
    name: STUCK,
    help: "Answers running or queued whose last entry is older than the stuck threshold (LIFELINE_STUCK_AFTER_MS), as the read models saw them last.",
    registers: [metrics.registry],
  });
}

/**
 * A gateway's read models and the projector that keeps them. Given a store, the projector starts
 * with the gateway; without one (a gateway built in a test), a store in memory is projected from
 * the first read of an ops route on, so gateways that never show `/ops` do no work for it.
 */
export class GatewayReadModels {
  readonly store: ReadModelStore;
  readonly stuckAfterMs: number;
  readonly #projector: Projector;
  #started = false;

  constructor(options: { engine: Engine; metrics: Metrics; logger?: Logger; readModels?: ReadModelOptions }) {
    this.store = options.readModels?.store ?? new MemoryReadModelStore();
    this.stuckAfterMs = options.readModels?.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS;
    const gauge = stuckGauge(options.metrics);
    this.#projector = new Projector({
      engine: options.engine,
      store: this.store,
      stuckAfterMs: this.stuckAfterMs,
      onStuck: (count) => gauge.set(count),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    if (options.readModels) this.start();
  }

  /** The last entry's time of a live answer, with what this gateway's projector saw since its row was written. */
  lastEntryAt(id: string, kept: string): string {
    return this.#projector.lastEntryAt(id, kept);
  }

  /** Starts the projector unless it runs. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#projector.start();
  }

  async stop(): Promise<void> {
    await this.#projector.stop();
  }
}
