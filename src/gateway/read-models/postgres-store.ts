import type pg from "pg";
import { inTransaction } from "../../engine/postgres/connection.ts";
import type { Migration } from "../../engine/postgres/migrations.ts";
import { openPostgresPart } from "../../engine/postgres/open-part.ts";
import type { Logger } from "../../observability/logger.ts";
import type { ProjectedGeneration } from "../../projections/summary.ts";
import {
  inIdOrder,
  type FoldToApply,
  type LiveQuery,
  type LiveRow,
  type ModelCounts,
  type ReadModelStore,
  type SearchPage,
  type SearchQuery,
  type WorkerActivity,
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

/** The read models' schema in PostgreSQL (decision 037); a released step is never edited. */
export const READ_MODEL_MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "projected generations, worker parts, positions", sql: TABLES },
];

const dollar = (n: number): string => `$${n}`;

/** Connects, migrates the read models' schema and returns the store; a clear error when PostgreSQL does not answer. */
export async function openPostgresReadModels(options: {
  url: string;
  budgetMs?: number;
  logger?: Logger;
}): Promise<PostgresReadModelStore> {
  const pool = await openPostgresPart({
    url: options.url,
    part: "read-models",
    migrations: READ_MODEL_MIGRATIONS,
    ...(options.budgetMs === undefined ? {} : { budgetMs: options.budgetMs }),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  return new PostgresReadModelStore(pool);
}

/**
 * The read models in PostgreSQL: the distributed mode's, shared by every gateway. Each row is
 * replaced in one transaction with its worker parts, and only by a fold of more of its log, so
 * gateways that project at once store the same rows whatever their order.
 */
export class PostgresReadModelStore implements ReadModelStore {
  readonly kind = "postgres";
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async apply(folds: readonly FoldToApply[]): Promise<boolean[]> {
    const stored = folds.map(() => false);
    if (folds.length === 0) return stored;
    return inTransaction(this.#pool, async (client) => {
      for (const i of inIdOrder(folds)) {
        const { generation: g, replace } = folds[i]!;
        if ((await client.query(upsertSql(dollar, replace), upsertValues(g))).rowCount === 0) continue;
        await client.query("DELETE FROM projected_worker_parts WHERE generation_id = $1", [g.summary.id]);
        for (const w of g.workers)
          await client.query(INSERT_PART(dollar), [g.summary.id, w.worker, w.attempts, w.takeovers, w.finished, w.lastSeenAt]);
        stored[i] = true;
      }
      return stored;
    });
  }

  async appliedOffset(id: string): Promise<number> {
    const result = await this.#pool.query<{ last_offset: number }>("SELECT last_offset FROM projected_generations WHERE id = $1", [id]);
    return result.rows[0]?.last_offset ?? 0;
  }

  async position(reader: string): Promise<string | undefined> {
    const result = await this.#pool.query<{ position: string }>("SELECT position FROM projection_positions WHERE reader = $1", [reader]);
    return result.rows[0]?.position;
  }

  async setPosition(reader: string, position: string | undefined): Promise<void> {
    if (position === undefined) await this.#pool.query("DELETE FROM projection_positions WHERE reader = $1", [reader]);
    else
      await this.#pool.query(
        "INSERT INTO projection_positions (reader, position) VALUES ($1, $2) ON CONFLICT (reader) DO UPDATE SET position = excluded.position",
        [reader, position],
      );
  }

  async live(query: LiveQuery = {}): Promise<LiveRow[]> {
    const { sql, values } = liveSql(query, dollar);
    return (await this.#docs(sql, values)).map((g) => ({ summary: g.summary, lastEntryAt: g.lastEntryAt }));
  }

  async search(query: SearchQuery): Promise<SearchPage> {
    const { sql, values } = searchSql(query, dollar);
    const rows = (await this.#docs(sql, values)).map((g) => g.summary);
    return { generations: rows.slice(0, query.limit), more: rows.length > query.limit };
  }

  async models(): Promise<ModelCounts[]> {
    const [rows, failures] = await Promise.all([
      this.#pool.query<ModelRow>(MODELS_SQL),
      this.#pool.query<{ model: string; provider: string; code: string; n: string }>(MODEL_FAILURES_SQL),
    ]);
    return modelCounts(rows.rows, failures.rows);
  }

  async failuresSince(since: string): Promise<{ code: string; count: number }[]> {
    return failureCounts((await this.#pool.query<{ code: string; n: string }>(FAILURES_SINCE_SQL(dollar), [since])).rows);
  }

  async workers(): Promise<WorkerActivity[]> {
    const result = await this.#pool.query<{ worker: string; attempts: string; takeovers: string; finished: string; last_seen_at: string }>(
      WORKERS_SQL,
    );
    return workerActivity(result.rows);
  }

  async all(): Promise<ProjectedGeneration[]> {
    return this.#docs('SELECT doc FROM projected_generations ORDER BY id COLLATE "C"', []);
  }

  async clear(): Promise<void> {
    await this.#pool.query("DELETE FROM projected_generations; DELETE FROM projected_worker_parts; DELETE FROM projection_positions;");
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  async #docs(sql: string, values: readonly (string | number)[]): Promise<ProjectedGeneration[]> {
    const result = await this.#pool.query<{ doc: string }>(sql, [...values]);
    return result.rows.map((row) => JSON.parse(row.doc) as ProjectedGeneration);
  }
}
