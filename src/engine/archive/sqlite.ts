import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Entry } from "../../core/entries.ts";
import type { GenerationsPage, LogHead } from "../port.ts";
import { checkFinishedLog, pageOf, type Archive } from "./port.ts";

/** The archive's file in the data dir, beside the sqlite engine's `lifeline.db`. */
export const ARCHIVE_FILE = "archive.db";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS archived_logs (
  generation_id TEXT PRIMARY KEY,
  last_offset   INTEGER NOT NULL,
  archived_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS archived_entries (
  generation_id TEXT NOT NULL,
  offset        INTEGER NOT NULL,
  entry         TEXT NOT NULL,                -- the entry's JSON text, exactly as the engine gave it
  PRIMARY KEY (generation_id, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS archive_positions (
  reader   TEXT PRIMARY KEY,
  position TEXT NOT NULL
) WITHOUT ROWID;
`;

/**
 * The archive in a sqlite file (`archive.db` in `LIFELINE_DATA_DIR`): the archive of a deployment
 * without PostgreSQL. Synchronous calls, like the sqlite engine: each is one short transaction.
 */
export class SqliteArchive implements Archive {
  readonly kind = "sqlite";
  readonly #db: Database.Database;
  readonly #insertEntry: Database.Statement<[string, number, string]>;
  readonly #insertLog: Database.Statement<[string, number, string]>;
  readonly #head: Database.Statement<[string], { last_offset: number }>;
  readonly #read: Database.Statement<[string, number, number], { entry: string }>;
  readonly #ids: Database.Statement<[string, number], { generation_id: string }>;
  readonly #position: Database.Statement<[string], { position: string }>;
  readonly #setPosition: Database.Statement<[string, string]>;
  readonly #storeAll: (id: string, texts: readonly string[]) => void;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.#db = new Database(join(dataDir, ARCHIVE_FILE));
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma("busy_timeout = 5000");
    this.#db.exec(SCHEMA);
    this.#insertEntry = this.#db.prepare("INSERT OR IGNORE INTO archived_entries (generation_id, offset, entry) VALUES (?, ?, ?)");
    this.#insertLog = this.#db.prepare("INSERT OR IGNORE INTO archived_logs (generation_id, last_offset, archived_at) VALUES (?, ?, ?)");
    this.#head = this.#db.prepare("SELECT last_offset FROM archived_logs WHERE generation_id = ?");
    this.#read = this.#db.prepare("SELECT entry FROM archived_entries WHERE generation_id = ? AND offset > ? ORDER BY offset LIMIT ?");
    this.#ids = this.#db.prepare("SELECT generation_id FROM archived_logs WHERE generation_id > ? ORDER BY generation_id LIMIT ?");
    this.#position = this.#db.prepare("SELECT position FROM archive_positions WHERE reader = ?");
    this.#setPosition = this.#db.prepare(
      "INSERT INTO archive_positions (reader, position) VALUES (?, ?) ON CONFLICT (reader) DO UPDATE SET position = excluded.position",
    );
    this.#storeAll = this.#db.transaction((id: string, texts: readonly string[]) => {
      if (this.#head.get(id)) return; // archived before: the first copy stands
      texts.forEach((text, i) => this.#insertEntry.run(id, i + 1, text));
      this.#insertLog.run(id, texts.length, new Date().toISOString());
    });
  }

  async store(id: string, entries: readonly Entry[]): Promise<void> {
    checkFinishedLog(id, entries);
    this.#storeAll(
      id,
      entries.map((entry) => JSON.stringify(entry)),
    );
  }

  async head(id: string): Promise<LogHead | undefined> {
    const row = this.#head.get(id);
    return row ? { lastOffset: row.last_offset, terminal: true } : undefined;
  }

  async read(id: string, afterOffset: number, limit: number): Promise<Entry[]> {
    return this.#read.all(id, afterOffset, limit).map((row) => JSON.parse(row.entry) as Entry);
  }

  async generations(after: string | undefined, limit: number): Promise<GenerationsPage> {
    const ids = this.#ids.all(after ?? "", limit + 1).map((row) => row.generation_id);
    return pageOf(ids, limit);
  }

  async position(reader: string): Promise<string | undefined> {
    return this.#position.get(reader)?.position;
  }

  async setPosition(reader: string, position: string): Promise<void> {
    this.#setPosition.run(reader, position);
  }

  async ping(): Promise<void> {
    this.#db.prepare("SELECT 1").get();
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
