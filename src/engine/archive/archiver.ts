import { isTerminal } from "../../core/entries.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Engine } from "../port.ts";
import { readLog } from "../read-log.ts";
import type { Archive } from "./port.ts";

/** Options of {@link Archiver}. */
export interface ArchiverOptions {
  /** The engine whose change feed is followed and whose logs are copied (never the archive-backed view of it). */
  readonly engine: Engine;
  readonly archive: Archive;
  readonly logger?: Logger;
  /** The name the archiver's position is kept under in the archive. @defaultValue "archiver" */
  readonly reader?: string;
  /** Feed records (and generations, in a sweep) per page. @defaultValue 200 */
  readonly pageSize?: number;
  /** Told of each log handled and each failed step (the process's metrics count them). */
  readonly onOutcome?: (outcome: ArchiverOutcome) => void;
  /** Longest pause between two tries after a failure (the archive or the engine does not answer). @defaultValue 5 000 ms */
  readonly maxBackoffMs?: number;
}

/** What became of one log (`archived`, `present`: archived already, `lost`), or `failed`: a step that is tried again. */
export type ArchiverOutcome = "archived" | "present" | "lost" | "failed";

/** What an archiver has done since it started. */
export interface ArchiverStats {
  /** Logs it copied into the archive. */
  readonly archived: number;
  /** Logs it found archived already (by another gateway, or before a restart). */
  readonly alreadyArchived: number;
  /** Logs that ended but were gone from the engine before they could be copied (the archiver was down past the retention). */
  readonly lost: number;
  /** Sweeps over every generation the engine holds: at the first start, and after the feed lost records. */
  readonly sweeps: number;
  /** The feed position it has handled, as recorded in the archive. */
  readonly position: string | undefined;
}

/**
 * Copies every log that ends into the archive (decision 039). It follows the engine's change feed
 * from the position it recorded in the archive, so it catches up after a restart with whatever
 * ended meanwhile; at a record that a log ended it reads the whole log from the engine and stores
 * it, unless the archive has it already. Copying twice is harmless, so every gateway runs one and
 * none needs a lock: the first to store a log wins, the others find it there.
 *
 * Where the feed cannot vouch for what came before (the first start, with no position yet, or a
 * page that says records were dropped before they were read) the archiver sweeps every
 * generation the engine still holds and copies the ones that ended, then goes on from the feed.
 *
 * A failure (PostgreSQL or the engine does not answer) is logged and tried again with backoff,
 * from the last recorded position; nothing is skipped.
 */
export class Archiver {
  readonly #options: ArchiverOptions;
  readonly #reader: string;
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  #archived = 0;
  #alreadyArchived = 0;
  #lost = 0;
  #sweeps = 0;
  #position: string | undefined;

  constructor(options: ArchiverOptions) {
    this.#options = options;
    this.#reader = options.reader ?? "archiver";
  }

  /** Starts following the feed; returns at once. */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Stops after the step in progress; resolves once it has. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }

  stats(): ArchiverStats {
    return {
      archived: this.#archived,
      alreadyArchived: this.#alreadyArchived,
      lost: this.#lost,
      sweeps: this.#sweeps,
      position: this.#position,
    };
  }

  async #run(): Promise<void> {
    const { engine, archive, logger } = this.#options;
    const signal = this.#stop.signal;
    const pageSize = this.#options.pageSize ?? 200;
    let failures = 0;
    let loaded = false;
    let sweep = false;
    while (!signal.aborted) {
      try {
        if (!loaded) {
          this.#position = await archive.position(this.#reader);
          // No position yet: logs may have ended before the feed's oldest record (an upgrade).
          sweep = this.#position === undefined;
          loaded = true;
        }
        const page = await engine.changes(this.#position, pageSize);
        if (page.gap) sweep = true;
        if (sweep) {
          if (page.gap)
            logger?.warn(
              { position: this.#position },
              "archiver: the change feed dropped records before they were read; sweeping every log",
            );
          await this.#sweep(pageSize, signal);
          sweep = false;
        }
        if (page.changes.length === 0) {
          await engine.waitForChanges(this.#position, signal);
          continue;
        }
        for (const change of page.changes) {
          if (signal.aborted) return;
          if (isTerminal(change)) await this.#copy(change.id);
        }
        const last = page.changes[page.changes.length - 1];
        if (last) {
          await archive.setPosition(this.#reader, last.position);
          this.#position = last.position;
        }
        failures = 0;
      } catch (error) {
        if (signal.aborted) return;
        failures++;
        this.#options.onOutcome?.("failed");
        const delay = Math.min(this.#options.maxBackoffMs ?? 5_000, 100 * 2 ** Math.min(failures, 10));
        logger?.warn({ err: (error as Error).message, retryInMs: delay, archive: archive.kind }, "archiver: a step failed; trying again");
        await pause(delay, signal);
      }
    }
  }

  /** Copies every log the engine holds that has ended and is not archived yet. */
  async #sweep(pageSize: number, signal: AbortSignal): Promise<void> {
    const { engine } = this.#options;
    this.#sweeps++;
    let after: string | undefined;
    do {
      const page = await engine.generations(after, pageSize);
      for (const id of page.ids) {
        if (signal.aborted) return;
        if ((await engine.head(id))?.terminal) await this.#copy(id);
      }
      after = page.next;
    } while (after !== undefined);
  }

  async #copy(id: string): Promise<void> {
    const { engine, archive, logger } = this.#options;
    if ((await archive.head(id)) !== undefined) {
      this.#alreadyArchived++;
      this.#options.onOutcome?.("present");
      return;
    }
    const entries = await readLog(engine, id);
    const last = entries[entries.length - 1];
    if (!last) {
      this.#lost++;
      this.#options.onOutcome?.("lost");
      logger?.error({ generation: id }, "archiver: the log ended but the engine no longer holds it; it cannot be archived");
      return;
    }
    if (!isTerminal(last)) throw new Error(`the feed says ${id} ended, but its log ends with ${last.type} at ${last.offset}`);
    await archive.store(id, entries);
    this.#archived++;
    this.#options.onOutcome?.("archived");
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
