import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { byWorker, type WorkerStatus, type WorkerStatusStore } from "./port.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS worker_status (
  worker      TEXT PRIMARY KEY,
  status      TEXT NOT NULL,                  -- the report as JSON
  expires_at  INTEGER NOT NULL                -- ms since the epoch
) WITHOUT ROWID;
`;

/** Reports in a sqlite file of their own (`workers.db`) in the engine's data folder, shared by every process on it. */
export class SqliteWorkerStatusStore implements WorkerStatusStore {
  readonly kind = "sqlite";
  readonly #db: Database.Database;

  constructor(options: { readonly dataDir: string }) {
    mkdirSync(options.dataDir, { recursive: true });
    this.#db = new Database(join(options.dataDir, "workers.db"));
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma("busy_timeout = 5000");
    // A report is a picture of the last seconds: losing the newest on a power cut costs nothing.
    this.#db.pragma("synchronous = NORMAL");
    this.#db.exec(SCHEMA);
  }

  async report(status: WorkerStatus, ttlMs: number): Promise<void> {
    this.#db
      .prepare("INSERT OR REPLACE INTO worker_status (worker, status, expires_at) VALUES (?, ?, ?)")
      .run(status.worker, JSON.stringify(status), Date.now() + ttlMs);
  }

  async remove(worker: string): Promise<void> {
    this.#db.prepare("DELETE FROM worker_status WHERE worker = ?").run(worker);
  }

  async list(): Promise<WorkerStatus[]> {
    const now = Date.now();
    this.#db.prepare("DELETE FROM worker_status WHERE expires_at <= ?").run(now);
    const rows = this.#db.prepare<[number], { status: string }>("SELECT status FROM worker_status WHERE expires_at > ?").all(now);
    return byWorker(rows.map((r) => JSON.parse(r.status) as WorkerStatus));
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
