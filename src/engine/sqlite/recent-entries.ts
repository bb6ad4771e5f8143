import { stampEntry, type Entry, type EntryBody } from "../../core/entries.ts";

/** Entries kept per log, at most: what a tail reads after a wake is the last few. */
const ENTRIES_PER_LOG = 16;
/** Logs kept, at most: the one appended to least recently goes first. */
const LOGS = 2048;

/** An entry as committed: parsed on its first read, once for every reader. */
interface Kept {
  readonly offset: number;
  readonly at: string;
  readonly json: string;
  entry?: Entry;
}

/**
 * The last entries this process committed to each log, for the reads that ask for them — a tail
 * woken by the commit reads what the commit wrote — served from memory, without a query or a parse
 * per reader (decision 066). A committed entry never changes and this engine never deletes a log,
 * so a kept entry is always right. A read that starts anywhere else goes to the file, and one that
 * another process's appends go past gets what this process kept, a shorter answer that a `read`
 * may give ("up to `limit`").
 */
export class RecentEntries {
  readonly #logs = new Map<string, Kept[]>();
  /** What the caller stamped the newest entries of each log with (the engine: its look's count of moves). */
  readonly #stamps = new Map<string, number>();

  /** Entries just committed to `id`, in offset order, and a stamp for them that {@link end} tells. */
  add(id: string, committed: readonly Kept[], stamp = 0): void {
    const first = committed[0];
    if (first === undefined) return;
    let kept = this.#logs.get(id);
    if (kept !== undefined) this.#logs.delete(id); // set again below: the most recent last
    if (kept === undefined || kept[kept.length - 1]!.offset !== first.offset - 1) kept = [];
    kept.push(...committed);
    if (kept.length > ENTRIES_PER_LOG) kept.splice(0, kept.length - ENTRIES_PER_LOG);
    this.#logs.set(id, kept);
    this.#stamps.set(id, stamp);
    if (this.#logs.size > LOGS) {
      const oldest = this.#logs.keys().next().value!;
      this.#logs.delete(oldest);
      this.#stamps.delete(oldest);
    }
  }

  /**
   * The offset of the newest entry kept of `id`, and the stamp it was added with: where this
   * process's commits left the log, which is where it ends unless another process wrote after.
   */
  end(id: string): { readonly offset: number; readonly stamp: number } | undefined {
    const kept = this.#logs.get(id);
    const last = kept?.[kept.length - 1];
    return last && { offset: last.offset, stamp: this.#stamps.get(id) ?? Number.NaN };
  }

  /** Up to `limit` entries after `afterOffset`, when the first of them is kept; `undefined` otherwise. */
  read(id: string, afterOffset: number, limit: number): Entry[] | undefined {
    const kept = this.#logs.get(id);
    if (kept === undefined || limit <= 0) return undefined;
    const from = afterOffset + 1 - kept[0]!.offset;
    if (from < 0 || from >= kept.length) return undefined;
    return kept.slice(from, from + limit).map((k) => (k.entry ??= stampEntry(JSON.parse(k.json) as EntryBody, k.offset, k.at)));
  }
}

export type { Kept as CommittedEntry };
