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
  /** Each log's kept entries, and the stamp its newest ones were added with (the engine: its look's count of moves). */
  readonly #logs = new Map<string, { kept: Kept[]; stamp: number }>();

  /** Entries just committed to `id`, in offset order, and a stamp for them that {@link endStamped} checks. */
  add(id: string, committed: readonly Kept[], stamp = 0): void {
    const first = committed[0];
    if (first === undefined) return;
    const log = this.#logs.get(id);
    if (log !== undefined) this.#logs.delete(id); // set again below: the most recent last
    let kept = log?.kept;
    if (kept === undefined || kept[kept.length - 1]!.offset !== first.offset - 1) kept = [];
    kept.push(...committed);
    if (kept.length > ENTRIES_PER_LOG) kept.splice(0, kept.length - ENTRIES_PER_LOG);
    this.#logs.set(id, { kept, stamp });
    if (this.#logs.size > LOGS) this.#logs.delete(this.#logs.keys().next().value!);
  }

  /**
   * The offset of the newest entry kept of `id` when it was added with `stamp`: where this
   * process's commits left the log, which is where it ends unless another process wrote after.
   */
  endStamped(id: string, stamp: number): number | undefined {
    const log = this.#logs.get(id);
    return log?.stamp === stamp ? log.kept[log.kept.length - 1]?.offset : undefined;
  }

  /** Up to `limit` entries after `afterOffset`, when the first of them is kept; `undefined` otherwise. */
  read(id: string, afterOffset: number, limit: number): Entry[] | undefined {
    const kept = this.#logs.get(id)?.kept;
    if (kept === undefined || limit <= 0) return undefined;
    const from = afterOffset + 1 - kept[0]!.offset;
    if (from < 0 || from >= kept.length) return undefined;
    return kept.slice(from, from + limit).map((k) => (k.entry ??= stampEntry(JSON.parse(k.json) as EntryBody, k.offset, k.at)));
  }
}

export type { Kept as CommittedEntry };
