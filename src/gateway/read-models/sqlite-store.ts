import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Checkpointer } from "../../engine/sqlite/checkpointer.ts";
import type { ProjectedGeneration } from "../../projections/summary.ts";
import type {
  FoldToApply,
  LiveQuery,
  LiveRow,
  ModelCounts,
  ReadModelStore,
  SearchPage,
  SearchQuery,
  WorkerActivity,
} from "../../projections/store/port.ts";
import {
  FAILURES_SINCE_SQL,
  INSERT_PART,
  liveSql,
  MODEL_FAILURES_SQL,
  MODELS_SQL,
  TABLES,
  WORKERS_SQL,
  failureCounts,
  modelCounts,
  searchSql,
  upsertSql,
  upsertValues,
  workerActivity,
  type ModelRow,
} from "../../projections/store/sql.ts";

const q = (): string => "?";

/** The read models in a file of the data dir (`projections.db` for the sqlite engine): shared by the processes of one deployment. */
export class SqliteReadModelStore implements ReadModelStore {
  readonly kind = "sqlite";
  readonly #db: Database.Database;
  readonly #upsert;
  readonly #replace;
  readonly #deleteParts;
  readonly #insertPart;
  readonly #applyAll: Database.Transaction<(folds: readonly FoldToApply[]) => boolean[]>;
  readonly #offset;
  readonly #setPosition;
  readonly #checkpointer: Checkpointer;
  /** Set by the first `close()`: every later call waits for the same close. */
  #closing: Promise<void> | undefined;

  constructor(dataDir: string, fileName = "projections.db") {
    mkdirSync(dataDir, { recursive: true });
    const file = join(dataDir, fileName);
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    // Derived data, rebuilt from the logs at will: this connection, the event loop's, never waits
    // for the disk (decision 076). With NORMAL it still did, once each time the log started over
    // (its header's sync), and under a busy disk that held the gateway's loop up to 190 ms. A
    // process that dies loses nothing (what was written is the system's); the checkpointer's thread
    // syncs the copy into the database file with sqlite's default; a machine that loses power may
    // lose or damage the latest rows: `lifeline projections rebuild` makes them again.
    db.pragma("synchronous = OFF");
    db.pragma("busy_timeout = 5000");
    db.exec(TABLES);
    this.#db = db;
    this.#checkpointer = new Checkpointer(db, file);
    this.#upsert = db.prepare(upsertSql(q));
    this.#replace = db.prepare(upsertSql(q, true));
    this.#deleteParts = db.prepare("DELETE FROM projected_worker_parts WHERE generation_id = ?");
    this.#insertPart = db.prepare(INSERT_PART(q));
    this.#offset = db.prepare<[string], { last_offset: number }>("SELECT last_offset FROM projected_generations WHERE id = ?");
    // Prepared once: the projector sets its position after every batch it folds.
    this.#setPosition = db.prepare<[string, string]>(
      "INSERT INTO projection_positions (reader, position) VALUES (?, ?) ON CONFLICT (reader) DO UPDATE SET position = excluded.position",
    );
    this.#applyAll = db.transaction((folds: readonly FoldToApply[]) => folds.map((fold) => this.#applyOne(fold)));
  }

  async apply(folds: readonly FoldToApply[]): Promise<boolean[]> {
    return folds.length === 0 ? [] : this.#applyAll.immediate(folds);
  }

  #applyOne({ generation: g, replace }: FoldToApply): boolean {
    if ((replace === true ? this.#replace : this.#upsert).run(...upsertValues(g)).changes === 0) return false;
    this.#deleteParts.run(g.summary.id);
    for (const w of g.workers) this.#insertPart.run(g.summary.id, w.worker, w.attempts, w.takeovers, w.finished, w.lastSeenAt);
    return true;
  }

  async appliedOffset(id: string): Promise<number> {
    return this.#offset.get(id)?.last_offset ?? 0;
  }

  async position(reader: string): Promise<string | undefined> {
    return this.#db.prepare<[string], { position: string }>("SELECT position FROM projection_positions WHERE reader = ?").get(reader)
      ?.position;
  }

  async setPosition(reader: string, position: string | undefined): Promise<void> {
    if (position === undefined) this.#db.prepare("DELETE FROM projection_positions WHERE reader = ?").run(reader);
    else this.#setPosition.run(reader, position);
  }

  async live(query: LiveQuery = {}): Promise<LiveRow[]> {
    const { sql, values } = liveSql(query, q);
    return this.#docs(sql, values).map((g) => ({ summary: g.summary, lastEntryAt: g.lastEntryAt }));
  }

  async search(query: SearchQuery): Promise<SearchPage> {
    const { sql, values } = searchSql(query, q);
    const rows = this.#docs(sql, values).map((g) => g.summary);
    return { generations: rows.slice(0, query.limit), more: rows.length > query.limit };
  }

  async models(): Promise<ModelCounts[]> {
    const rows = this.#db.prepare<[], ModelRow>(MODELS_SQL).all();
    const failures = this.#db.prepare<[], { model: string; provider: string; code: string; n: number }>(MODEL_FAILURES_SQL).all();
    return modelCounts(rows, failures);
  }

  async failuresSince(since: string): Promise<{ code: string; count: number }[]> {
    return failureCounts(this.#db.prepare<[string], { code: string; n: number }>(FAILURES_SINCE_SQL(q)).all(since));
  }

  async workers(): Promise<WorkerActivity[]> {
    return workerActivity(
      this.#db
        .prepare<[], { worker: string; attempts: number; takeovers: number; finished: number; last_seen_at: string }>(WORKERS_SQL)
        .all(),
    );
  }

  async all(): Promise<ProjectedGeneration[]> {
    return this.#docs("SELECT doc FROM projected_generations ORDER BY id", []);
  }

  async clear(): Promise<void> {
    this.#db.exec("DELETE FROM projected_generations; DELETE FROM projected_worker_parts; DELETE FROM projection_positions;");
  }

  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    await this.#checkpointer.stop();
    this.#db.close();
  }

  #docs(sql: string, values: readonly (string | number)[]): ProjectedGeneration[] {
    return this.#db
      .prepare<(string | number)[], { doc: string }>(sql)
      .all(...values)
      .map((row) => JSON.parse(row.doc) as ProjectedGeneration);
  }
}
