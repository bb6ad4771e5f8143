import type Database from "better-sqlite3";
import type { EntryType } from "../../core/entries.ts";
import type { ChangesPage, GenerationsPage } from "../port.ts";

/**
 * The sqlite engine's change feed (decision 036): one row per record in `changes`, written inside
 * the transaction that creates, claims or ends a log, so a record stands exactly when its change
 * does. Positions are the row's sequence number as text. The file keeps every log for good, so the
 * feed is never trimmed and a reader never sees a gap.
 */
export class SqliteFeed {
  readonly #insert: Database.Statement<[string, string]>;
  readonly #page: Database.Statement<[number, number], { seq: number; generation_id: string; type: EntryType }>;
  readonly #last: Database.Statement<[], { seq: number | null }>;
  readonly #generations: Database.Statement<[number, number], { seq: number; id: string }>;

  constructor(db: Database.Database) {
    this.#insert = db.prepare("INSERT INTO changes (generation_id, type) VALUES (?, ?)");
    this.#page = db.prepare("SELECT seq, generation_id, type FROM changes WHERE seq > ? ORDER BY seq LIMIT ?");
    this.#last = db.prepare("SELECT max(seq) AS seq FROM changes");
    this.#generations = db.prepare("SELECT seq, id FROM generations WHERE seq > ? ORDER BY seq LIMIT ?");
  }

  /** Notes that log `id` got an entry of `type`; inside the transaction that wrote it. */
  record(id: string, type: EntryType): void {
    this.#insert.run(id, type);
  }

  /** The newest record's sequence number, 0 before the first. */
  last(): number {
    return this.#last.get()?.seq ?? 0;
  }

  page(after: string | undefined, limit: number): ChangesPage {
    const rows = this.#page.all(positionOf(after), limit);
    return { gap: false, changes: rows.map((row) => ({ position: String(row.seq), id: row.generation_id, type: row.type })) };
  }

  generations(after: string | undefined, limit: number): GenerationsPage {
    const rows = this.#generations.all(positionOf(after), limit);
    const last = rows.at(-1);
    return { ids: rows.map((row) => row.id), ...(last && rows.length === limit ? { next: String(last.seq) } : {}) };
  }
}

/** A position as this feed wrote it; anything else is a caller's mistake. */
export function positionOf(position: string | undefined): number {
  if (position === undefined) return 0;
  if (!/^\d{1,15}$/.test(position)) throw new Error(`not a position of the sqlite change feed: ${JSON.stringify(position)}`);
  return Number(position);
}
