import type { Entry } from "../../core/entries.ts";
import type { GenerationsPage, LogHead } from "../port.ts";

/**
 * The archive of finished logs (DESIGN §9): a copy, entry for entry, of every log that ended, kept
 * after the engine's retention has dropped the log (Redis keeps a finished log for
 * `LIFELINE_REDIS_RETENTION_SECONDS`). Adapters: `postgres` (the distributed mode,
 * `LIFELINE_POSTGRES_URL`), `sqlite` (a file in the data dir), `memory` (tests). One conformance
 * suite runs against each (test/engine/archive).
 *
 * An archived log is immutable: it ended, so no entry will ever be added or changed. Each entry is
 * kept as the exact JSON text of the entry the engine gave, so reading it back and encoding it
 * again gives the same bytes as the live log did.
 *
 * Only real failures throw (the store does not answer); a log that is not archived is `undefined`
 * or empty, as on the engine.
 */
export interface Archive {
  /** `memory`, `sqlite` or `postgres`, for logs and metrics. */
  readonly kind: string;

  /**
   * Keeps a finished log: `entries` are the whole log, offsets 1…n in order, the last one terminal
   * (a `RangeError` otherwise: the caller's mistake). Storing a log again is harmless: the first
   * copy stands (a finished log never changes, so any copy is the same).
   */
  store(id: string, entries: readonly Entry[]): Promise<void>;

  /** Where an archived log stands (always terminal), or `undefined` when it is not archived. */
  head(id: string): Promise<LogHead | undefined>;

  /** Up to `limit` entries with offsets above `afterOffset`, in offset order; empty when the log is not archived. */
  read(id: string, afterOffset: number, limit: number): Promise<Entry[]>;

  /**
   * The archived generations, `limit` ids a page after the opaque `after` (`undefined`: from the
   * first), in an order that does not change (new ones may or may not appear in later pages); the
   * engine's `generations` for logs it no longer holds, so a rebuild of the read models sees them.
   */
  generations(after: string | undefined, limit: number): Promise<GenerationsPage>;

  /** How far the reader named `reader` (the archiver) has gone through the engine's change feed, or `undefined` before its first step. */
  position(reader: string): Promise<string | undefined>;

  /** Records `reader`'s position; it only says that every log that ended before it is archived. */
  setPosition(reader: string, position: string): Promise<void>;

  /** Resolves when the store answers; throws when it does not. */
  ping(): Promise<void>;

  /** Releases connections. */
  close(): Promise<void>;
}

/** Checks what {@link Archive.store} is given: the whole log, 1…n, ending with its terminal entry. */
export function checkFinishedLog(id: string, entries: readonly Entry[]): void {
  entries.forEach((entry, i) => {
    if (entry.offset !== i + 1) throw new RangeError(`archive ${id}: entry ${i + 1} has offset ${entry.offset}`);
  });
  const last = entries[entries.length - 1];
  if (!last || !TERMINAL.has(last.type)) throw new RangeError(`archive ${id}: a log is archived once it has ended`);
}

const TERMINAL: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);

/** A page of ids from up to `limit + 1` ids read in order: `next` when there is more. */
export function pageOf(ids: readonly string[], limit: number): GenerationsPage {
  const page = ids.slice(0, limit);
  const last = page[page.length - 1];
  return ids.length > limit && last !== undefined ? { ids: page, next: last } : { ids: page };
}
