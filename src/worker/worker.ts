import type { Engine } from "../engine/port.ts";
import type { ModelRegistry } from "../llm/models.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { AnswerRun } from "./answer-run.ts";

export interface WorkerOptions {
  readonly engine: Engine;
  readonly models: ModelRegistry;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** This worker's name in `started` entries and logs. */
  readonly name: string;
  /** Lease length: a dead worker's answer is taken over after at most this. */
  readonly leaseMs: number;
  /** Answers run at once. */
  readonly concurrency: number;
  /** Tokens arriving within this window are appended as one `delta`. */
  readonly coalesceMs: number;
}

/**
 * Claims jobs and runs their answers, up to `concurrency` at once. `stop()` stops claiming, stops
 * every model call, keeps what was produced and hands the jobs back at once.
 */
export class Worker {
  readonly #options: WorkerOptions;
  readonly #runs = new Map<AnswerRun, Promise<void>>();
  readonly #stopping = new AbortController();
  #slotFreed: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: WorkerOptions) {
    this.#options = options;
  }

  get activeRuns(): number {
    return this.#runs.size;
  }

  start(): void {
    this.#loop ??= this.#claimLoop();
  }

  async #claimLoop(): Promise<void> {
    const { engine, name, leaseMs, concurrency, logger } = this.#options;
    const signal = this.#stopping.signal;
    while (!signal.aborted) {
      if (this.#runs.size >= concurrency) {
        await new Promise<void>((resolve) => (this.#slotFreed = resolve));
        continue;
      }
      let claim;
      try {
        claim = await engine.claim(name, leaseMs, signal);
      } catch (error) {
        if (signal.aborted) break;
        logger.error({ err: error }, "claim failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (!claim) break;
      if (signal.aborted) {
        // Claimed while stopping: hand it straight back rather than run it to the end.
        await engine.release(claim.id, claim.fence).catch(() => undefined);
        break;
      }
      const run = new AnswerRun({ ...this.#options, worker: name }, claim);
      const done = run.run().finally(() => {
        this.#runs.delete(run);
        this.#slotFreed?.();
        this.#slotFreed = undefined;
      });
      this.#runs.set(run, done);
    }
  }

  /** Graceful shutdown: no new claims; running answers are flushed and handed back. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#slotFreed?.();
    for (const run of this.#runs.keys()) run.stop("shutdown");
    await this.#loop;
    await Promise.all(this.#runs.values());
  }
}
