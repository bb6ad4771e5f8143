import { setMaxListeners } from "node:events";
import type { Engine } from "../engine/port.ts";
import type { ModelRegistry } from "../llm/models.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { yieldIfLong } from "../observability/turns.ts";
import { AnswerRun } from "./answer-run.ts";
import { CoalesceWindow } from "./coalesce-window.ts";

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
  /** Tokens arriving within this window are appended as one `delta` (wider while the process is saturated: {@link CoalesceWindow}). */
  readonly coalesceMs: number;
}

/** How long a worker sits with nothing to run before it says it waits for work. */
const IDLE_NOTICE_MS = 1000;

/**
 * Claims jobs and runs their answers, up to `concurrency` at once. `stop()` stops claiming, stops
 * every model call, keeps what was produced and hands the jobs back at once.
 */
export class Worker {
  readonly #options: WorkerOptions;
  readonly #runs = new Map<AnswerRun, Promise<void>>();
  /** When each run's job was claimed (ms since the epoch), for the status report. */
  readonly #claimedAt = new Map<AnswerRun, number>();
  readonly #stopping = new AbortController();
  /** The lease keeper: one timer renews every lease this worker holds, in one engine call. */
  #keeper: NodeJS.Timeout | undefined;
  #renewing = false;
  /** Claim loops waiting for a free slot. */
  readonly #waitingForSlot = new Set<() => void>();
  /** Claims under way: they count against the concurrency like runs. */
  #claiming = 0;
  #loop: Promise<void> | undefined;
  /** Says once per idle spell that the worker waits for work. */
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #window: CoalesceWindow;

  constructor(options: WorkerOptions) {
    this.#options = options;
    this.#window = new CoalesceWindow(options.coalesceMs);
    // Every claim loop waits on it (up to 128 on Redis): not a leak, so no warning past ten.
    setMaxListeners(0, this.#stopping.signal);
  }

  /** The coalescing window of its runs now, in ms (decision 018). */
  get coalesceWindowMs(): number {
    return this.#window.ms;
  }

  get activeRuns(): number {
    return this.#runs.size;
  }

  /** The leases this worker holds now, each with when it was claimed: what its status report shows. */
  heldLeases(): { id: string; fence: number; claimedAt: number }[] {
    return [...this.#claimedAt].map(([run, claimedAt]) => ({ id: run.lease.id, fence: run.lease.fence, claimedAt }));
  }

  /**
   * As many claim loops as the engine gains from (`parallelClaims`), so that a burst of queued
   * answers is taken up in parallel where a claim waits on the network (Redis: a replica confirms
   * it); never more than the concurrency.
   */
  start(): void {
    const loops = Math.max(1, Math.min(this.#options.concurrency, this.#options.engine.parallelClaims));
    this.#noteIdle();
    this.#window.start();
    this.#keeper ??= setInterval(() => void this.#renewLeases(), Math.max(50, Math.min(this.#options.leaseMs / 3, 1000)));
    this.#loop ??= Promise.all(Array.from({ length: loops }, () => this.#claimLoop())).then(() => undefined);
  }

  async #claimLoop(): Promise<void> {
    const { engine, name, leaseMs, concurrency, logger } = this.#options;
    const signal = this.#stopping.signal;
    // One context for every run of this loop: a spread per run gave each a hidden class of its own.
    const context = { ...this.#options, worker: name, coalesce: this.#window };
    while (!signal.aborted) {
      // On a store that answers at once (sqlite, memory), claims and the starts of their runs chain
      // through promises that never wait for I/O: a thousand jobs queued held the loop for a second.
      // Asked before the room is counted, which nothing may change between that count and the claim.
      for (let turn = yieldIfLong(); turn; turn = yieldIfLong()) await turn;
      if (this.#runs.size + this.#claiming >= concurrency) {
        await new Promise<void>((resolve) => this.#waitingForSlot.add(resolve));
        continue;
      }
      let claim;
      this.#claiming += 1;
      try {
        claim = await engine.claim(name, leaseMs, signal);
      } catch (error) {
        if (signal.aborted) break;
        this.#wakeOne(); // the slot this claim held is free again
        logger.error({ err: error }, "claim failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
        continue;
      } finally {
        this.#claiming -= 1;
      }
      if (!claim) break;
      if (signal.aborted) {
        // Claimed while stopping: hand it straight back rather than run it to the end.
        await engine.release(claim.id, claim.fence).catch(() => undefined);
        break;
      }
      const run = new AnswerRun(context, claim);
      clearTimeout(this.#idleTimer);
      this.#claimedAt.set(run, Date.now());
      const done = run.run().finally(() => {
        this.#runs.delete(run);
        this.#claimedAt.delete(run);
        this.#wakeOne();
        if (this.#runs.size === 0) this.#noteIdle();
      });
      this.#runs.set(run, done);
    }
  }

  /**
   * Renews every held lease at once, a third of a lease before it runs out (at most every second).
   * A lease found lost or closed stops its run. A round still under way is not overlapped: a slow
   * store gets one round at a time, not a pile of them.
   */
  async #renewLeases(): Promise<void> {
    if (this.#renewing || this.#runs.size === 0) return;
    this.#renewing = true;
    const runs = [...this.#runs.keys()];
    try {
      const results = await this.#options.engine.renewAll(
        runs.map((run) => run.lease),
        this.#options.leaseMs,
      );
      results.forEach((result, i) => {
        if (result === "lost") runs[i]?.stop("leaseLost");
        else if (result === "closed") runs[i]?.stop("closed");
      });
    } catch (error) {
      this.#options.logger.warn({ err: error, leases: runs.length }, "lease renewal failed; retrying");
    } finally {
      this.#renewing = false;
    }
  }

  /** Logs "waiting for work" once the worker has sat a moment with nothing to run; not per claim or poll. */
  #noteIdle(): void {
    clearTimeout(this.#idleTimer);
    if (this.#stopping.signal.aborted) return;
    this.#idleTimer = setTimeout(() => {
      if (this.#runs.size === 0 && !this.#stopping.signal.aborted)
        this.#options.logger.info({ worker: this.#options.name }, "waiting for work");
    }, IDLE_NOTICE_MS).unref();
  }

  #wakeOne(): void {
    const [first] = this.#waitingForSlot;
    if (!first) return;
    this.#waitingForSlot.delete(first);
    first();
  }

  /** Graceful shutdown: no new claims; running answers are flushed and handed back. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    clearTimeout(this.#idleTimer);
    for (const resolve of this.#waitingForSlot) resolve();
    this.#waitingForSlot.clear();
    for (const run of this.#runs.keys()) run.stop("shutdown");
    await this.#loop;
    await Promise.all(this.#runs.values());
    clearInterval(this.#keeper);
    this.#window.stop();
  }
}
