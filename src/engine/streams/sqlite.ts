import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Checkpointer } from "../sqlite/checkpointer.ts";
import { OtherProcesses } from "../sqlite/other-processes.ts";
import { Wakeups } from "../wakeups.ts";
import {
  revisionOf,
  type CommitResult,
  type StoredStream,
  type StreamChange,
  type StreamChunk,
  type StreamRecord,
  type StreamStore,
} from "./port.ts";
import { takeChunks } from "./take-chunks.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS streams (
  name        TEXT PRIMARY KEY,
  revision    TEXT NOT NULL,
  record      TEXT NOT NULL,                  -- StreamRecord as JSON
  touched_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_chunks (
  name        TEXT NOT NULL,
  position    INTEGER NOT NULL,
  data        BLOB NOT NULL,
  PRIMARY KEY (name, position)
) WITHOUT ROWID;
`;

/** How many chunks one read fetches at most; `maxBytes` usually ends the page first. */
const READ_ROWS = 1000;

export interface SqliteStreamStoreOptions {
  /** Folder of the data file `streams.db` (beside the engine's `lifeline.db`); created when missing. */
  readonly dataDir: string;
  /** How often the process looks for commits of other processes, while someone waits. @defaultValue 25 */
  readonly watchMs?: number;
  /** `normal` survives a killed process; `full` also survives power loss. @defaultValue "normal" */
  readonly synchronous?: "normal" | "full";
}

/**
 * Streams in a sqlite file of their own (WAL), shared safely by several processes: a commit is one
 * immediate transaction that checks the revision and writes the record and the chunks.
 */
export class SqliteStreamStore implements StreamStore {
  readonly kind = "sqlite";
  readonly #db: Database.Database;
  readonly #wakeups = new Wakeups();
  readonly #otherProcesses: OtherProcesses<string>;
  readonly #checkpointer: Checkpointer;
  readonly #stmt;
  readonly #commit: (name: string, expected: string | undefined, change: StreamChange) => CommitResult;
  /** Set by the first `close()`: every later call waits for the same close. */
  #closing: Promise<void> | undefined;

  constructor(options: SqliteStreamStoreOptions) {
    mkdirSync(options.dataDir, { recursive: true });
    const file = join(options.dataDir, "streams.db");
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`);
    db.pragma("busy_timeout = 5000");
    db.exec(SCHEMA);
    this.#db = db;
    this.#checkpointer = new Checkpointer(db, file);
    this.#stmt = {
      load: db.prepare<[string], { revision: string; record: string; touched_at: number }>(
        "SELECT revision, record, touched_at FROM streams WHERE name = ?",
      ),
      revision: db.prepare<[string], { revision: string }>("SELECT revision FROM streams WHERE name = ?"),
      upsert: db.prepare(
        `INSERT INTO streams (name, revision, record, touched_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, record = excluded.record`,
      ),
      resetTouched: db.prepare("UPDATE streams SET touched_at = ? WHERE name = ?"),
      remove: db.prepare("DELETE FROM streams WHERE name = ?"),
      removeChunks: db.prepare("DELETE FROM stream_chunks WHERE name = ?"),
      insertChunk: db.prepare("INSERT INTO stream_chunks (name, position, data) VALUES (?, ?, ?)"),
      read: db.prepare<[string, number, number], { position: number; data: Buffer }>(
        "SELECT position, data FROM stream_chunks WHERE name = ? AND position > ? ORDER BY position LIMIT ?",
      ),
      touch: db.prepare("UPDATE streams SET touched_at = max(touched_at, ?) WHERE name = ?"),
      revisions: db.prepare<[string], { name: string; revision: string }>(
        "SELECT name, revision FROM streams WHERE name IN (SELECT value FROM json_each(?))",
      ),
    };
    const stmt = this.#stmt;
    const commit = db.transaction((name: string, expected: string | undefined, change: StreamChange): CommitResult => {
      if (stmt.revision.get(name)?.revision !== expected) return "conflict";
      if (change.record === null) {
        stmt.remove.run(name);
        stmt.removeChunks.run(name);
        return "committed";
      }
      if (change.replaceChunks) stmt.removeChunks.run(name);
      stmt.upsert.run(name, revisionOf(change.record), JSON.stringify(change.record), change.record.createdAt);
      if (expected === undefined || change.replaceChunks) stmt.resetTouched.run(change.record.createdAt, name);
      for (const chunk of change.chunks) stmt.insertChunk.run(name, chunk.position, chunk.data);
      return "committed";
    });
    this.#commit = (name, expected, change) => commit.immediate(name, expected, change);
    this.#otherProcesses = new OtherProcesses(
      db,
      this.#wakeups,
      (names) => this.#stmt.revisions.all(JSON.stringify(names)).map((row) => [row.name, row.revision] as const),
      { everyMs: options.watchMs ?? 25 },
    );
  }

  async load(name: string): Promise<StoredStream | undefined> {
    const row = this.#stmt.load.get(name);
    if (!row) return undefined;
    return { revision: row.revision, record: JSON.parse(row.record) as StreamRecord, touchedAt: row.touched_at };
  }

  async commit(name: string, expected: string | undefined, change: StreamChange): Promise<CommitResult> {
    const result = this.#commit(name, expected, change);
    if (result === "committed") this.#wakeups.wake(name);
    return result;
  }

  async read(name: string, afterPosition: number, maxBytes: number): Promise<StreamChunk[]> {
    return takeChunks(this.#stmt.read.all(name, afterPosition, READ_ROWS), maxBytes);
  }

  async touch(name: string, atMs: number): Promise<void> {
    this.#stmt.touch.run(atMs, name);
  }

  async wait(name: string, revision: string, signal: AbortSignal): Promise<void> {
    const next = this.#wakeups.next(name, signal);
    this.#otherProcesses.saw(name, revision);
    if (this.#stmt.revision.get(name)?.revision !== revision) this.#wakeups.wake(name);
    await next;
  }

  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    this.#otherProcesses.stop();
    this.#wakeups.wakeAll();
    await this.#checkpointer.stop();
    this.#db.close();
  }
}
