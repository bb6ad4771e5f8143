import type { ProjectedGeneration } from "../summary.ts";
import { sortModels } from "./counts.ts";
import type { LiveQuery, ModelCounts, SearchQuery, WorkerActivity } from "./port.ts";

/**
 * The SQL the sqlite and PostgreSQL read-model stores share: one dialect where both agree
 * (`count(*) FILTER`, `ON CONFLICT … DO UPDATE … WHERE`), times kept as ISO text so what is read
 * back is what the fold wrote, and placeholders written by the caller's dialect.
 */
export const TABLES = `
CREATE TABLE IF NOT EXISTS projected_generations (
  id            TEXT PRIMARY KEY,
  status        TEXT NOT NULL,
  model         TEXT NOT NULL,
  provider      TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  ended_at      TEXT,
  last_entry_at TEXT NOT NULL,
  last_offset   INTEGER NOT NULL,
  retries       INTEGER NOT NULL,
  breaker_opens INTEGER NOT NULL,
  error_code    TEXT,
  doc           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS projected_generations_created ON projected_generations (created_at, id);
CREATE INDEX IF NOT EXISTS projected_generations_status ON projected_generations (status, created_at);
CREATE TABLE IF NOT EXISTS projected_worker_parts (
  generation_id TEXT NOT NULL,
  worker        TEXT NOT NULL,
  attempts      INTEGER NOT NULL,
  takeovers     INTEGER NOT NULL,
  finished      INTEGER NOT NULL,
  last_seen_at  TEXT NOT NULL,
  PRIMARY KEY (generation_id, worker)
);
CREATE TABLE IF NOT EXISTS projection_positions (
  reader   TEXT PRIMARY KEY,
  position TEXT NOT NULL
);`;

/** A placeholder of the dialect: `?` for sqlite, `$n` for PostgreSQL. */
export type Placeholder = (n: number) => string;

/** The upsert of a row that only a fold of more of the log may replace (any fold, with `replace`). */
export function upsertSql(p: Placeholder, replace = false): string {
  const values = Array.from({ length: 12 }, (_, i) => p(i + 1)).join(", ");
  return `INSERT INTO projected_generations
      (id, status, model, provider, created_at, ended_at, last_entry_at, last_offset, retries, breaker_opens, error_code, doc)
    VALUES (${values})
    ON CONFLICT (id) DO UPDATE SET status = excluded.status, model = excluded.model, provider = excluded.provider,
      created_at = excluded.created_at, ended_at = excluded.ended_at, last_entry_at = excluded.last_entry_at,
      last_offset = excluded.last_offset, retries = excluded.retries, breaker_opens = excluded.breaker_opens,
      error_code = excluded.error_code, doc = excluded.doc
    ${replace ? "" : "WHERE projected_generations.last_offset < excluded.last_offset"}`;
}

/** The values of {@link upsertSql}, in order. */
export function upsertValues(g: ProjectedGeneration): (string | number | null)[] {
  const s = g.summary;
  return [
    s.id,
    s.status,
    s.model,
    g.provider,
    s.createdAt,
    s.endedAt ?? null,
    g.lastEntryAt,
    s.lastOffset,
    s.retries,
    g.breakerOpens,
    s.errorCode ?? null,
    JSON.stringify(g),
  ];
}

export const INSERT_PART = (p: Placeholder): string =>
  `INSERT INTO projected_worker_parts (generation_id, worker, attempts, takeovers, finished, last_seen_at)
   VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)})`;

/** The search of {@link SearchQuery} as a statement and its values; one row more than the limit says there are more. */
export function searchSql(query: SearchQuery, p: Placeholder): { sql: string; values: (string | number)[] } {
  const where: string[] = [];
  const values: (string | number)[] = [];
  const add = (clause: (ph: string) => string, value: string): void => {
    values.push(value);
    where.push(clause(p(values.length)));
  };
  if (query.id !== undefined) add((ph) => `id = ${ph}`, query.id);
  if (query.status !== undefined) add((ph) => `status = ${ph}`, query.status);
  if (query.model !== undefined) add((ph) => `model = ${ph}`, query.model);
  if (query.since !== undefined) add((ph) => `created_at >= ${ph}`, query.since);
  if (query.until !== undefined) add((ph) => `created_at < ${ph}`, query.until);
  if (query.before !== undefined) {
    values.push(query.before.createdAt, query.before.createdAt, query.before.id);
    const n = values.length;
    where.push(`(created_at < ${p(n - 2)} OR (created_at = ${p(n - 1)} AND id < ${p(n)}))`);
  }
  values.push(query.limit + 1);
  const sql = `SELECT doc FROM projected_generations ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
    ORDER BY created_at DESC, id DESC LIMIT ${p(values.length)}`;
  return { sql, values };
}

/** Answers queued or running, oldest first; with `query`, only those it names (see {@link LiveQuery}). */
export function liveSql(query: LiveQuery, p: Placeholder): { sql: string; values: string[] } {
  const values: string[] = [];
  const or: string[] = [];
  if (query.lastEntryBefore !== undefined) {
    values.push(query.lastEntryBefore);
    or.push(`last_entry_at < ${p(values.length)}`);
  }
  if (query.ids !== undefined && query.ids.length > 0) {
    const first = values.length + 1;
    values.push(...query.ids);
    or.push(`id IN (${query.ids.map((_, i) => p(first + i)).join(", ")})`);
  }
  const narrowed = query.lastEntryBefore !== undefined || query.ids !== undefined;
  const where = narrowed ? ` AND (${or.length > 0 ? or.join(" OR ") : "FALSE"})` : "";
  return { sql: `SELECT doc FROM projected_generations WHERE status IN ('queued', 'running')${where} ORDER BY created_at, id`, values };
}

export const MODELS_SQL = `SELECT model, provider, count(*) AS answers,
    count(*) FILTER (WHERE status = 'completed') AS completed, count(*) FILTER (WHERE status = 'failed') AS failed,
    sum(retries) AS retries, sum(breaker_opens) AS breaker_opens
  FROM projected_generations GROUP BY model, provider`;

export const MODEL_FAILURES_SQL = `SELECT model, provider, coalesce(error_code, '') AS code, count(*) AS n
  FROM projected_generations WHERE status = 'failed' GROUP BY model, provider, coalesce(error_code, '')`;

export const FAILURES_SINCE_SQL = (p: Placeholder): string => `SELECT coalesce(error_code, '') AS code, count(*) AS n
  FROM projected_generations WHERE status = 'failed' AND ended_at >= ${p(1)} GROUP BY coalesce(error_code, '')`;

export const WORKERS_SQL = `SELECT worker, sum(attempts) AS attempts, sum(takeovers) AS takeovers, sum(finished) AS finished,
    max(last_seen_at) AS last_seen_at
  FROM projected_worker_parts GROUP BY worker`;

export interface ModelRow {
  model: string;
  provider: string;
  answers: number | string;
  completed: number | string;
  failed: number | string;
  retries: number | string;
  breaker_opens: number | string;
}

/** Joins the two model queries' rows (PostgreSQL's counts come back as text). */
export function modelCounts(
  rows: readonly ModelRow[],
  failures: readonly { model: string; provider: string; code: string; n: number | string }[],
): ModelCounts[] {
  const byKey = new Map<string, ModelCounts>();
  for (const r of rows) {
    byKey.set(JSON.stringify([r.model, r.provider]), {
      model: r.model,
      provider: r.provider,
      answers: Number(r.answers),
      completed: Number(r.completed),
      failed: Number(r.failed),
      retries: Number(r.retries),
      breakerOpens: Number(r.breaker_opens),
      failuresByCode: {},
    });
  }
  for (const f of failures) {
    const counts = byKey.get(JSON.stringify([f.model, f.provider]));
    if (counts) counts.failuresByCode[f.code] = Number(f.n);
  }
  return sortModels([...byKey.values()]);
}

export function failureCounts(rows: readonly { code: string; n: number | string }[]): { code: string; count: number }[] {
  return rows.map((r) => ({ code: r.code, count: Number(r.n) })).sort((a, b) => b.count - a.count || (a.code < b.code ? -1 : 1));
}

export function workerActivity(
  rows: readonly {
    worker: string;
    attempts: number | string;
    takeovers: number | string;
    finished: number | string;
    last_seen_at: string;
  }[],
): WorkerActivity[] {
  return rows
    .map((r) => ({
      worker: r.worker,
      attempts: Number(r.attempts),
      takeovers: Number(r.takeovers),
      finished: Number(r.finished),
      lastSeenAt: r.last_seen_at,
    }))
    .sort((a, b) => (a.worker < b.worker ? -1 : 1));
}
