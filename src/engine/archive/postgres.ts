import type pg from "pg";
import type { Entry } from "../../core/entries.ts";
import type { Logger } from "../../observability/logger.ts";
import { inTransaction } from "../postgres/connection.ts";
import type { Migration } from "../postgres/migrations.ts";
import { openPostgresPart } from "../postgres/open-part.ts";
import type { GenerationsPage, LogHead } from "../port.ts";
import { checkFinishedLog, pageOf, type Archive } from "./port.ts";

/**
 * The archive's schema in PostgreSQL, one migration per released change (decision 038). Entries
 * are `text`, not `jsonb`: jsonb reorders keys and normalises numbers, and the archive must give
 * back the bytes the engine gave. Ids compare bytewise (`COLLATE "C"`) whatever the database's
 * locale, so the pages of `generations` follow the primary key's order.
 */
export const ARCHIVE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "archived logs, entries and reader positions",
    sql: `
      CREATE TABLE archived_logs (
        generation_id text COLLATE "C" PRIMARY KEY,
        last_offset   integer     NOT NULL,
        archived_at   timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE archived_entries (
        generation_id text    NOT NULL,
        "offset"      integer NOT NULL,
        entry         text    NOT NULL,
        PRIMARY KEY (generation_id, "offset")
      );
      CREATE TABLE archive_positions (
        reader     text        PRIMARY KEY,
        position   text        NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
];

/** Options of {@link openPostgresArchive}. */
export interface PostgresArchiveOptions {
  readonly url: string;
  /** How long PostgreSQL may stay unreachable at start. @defaultValue 10 000 ms */
  readonly budgetMs?: number;
  readonly logger?: Logger;
}

/** Connects, migrates the archive's schema and returns the archive; throws a clear error when PostgreSQL does not answer. */
export async function openPostgresArchive(options: PostgresArchiveOptions): Promise<PostgresArchive> {
  const pool = await openPostgresPart({
    url: options.url,
    part: "archive",
    migrations: ARCHIVE_MIGRATIONS,
    ...(options.budgetMs === undefined ? {} : { budgetMs: options.budgetMs }),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  return new PostgresArchive(pool);
}

/** The archive in PostgreSQL: the distributed mode's, shared by every gateway. */
export class PostgresArchive implements Archive {
  readonly kind = "postgres";

  constructor(readonly pool: pg.Pool) {}

  async store(id: string, entries: readonly Entry[]): Promise<void> {
    checkFinishedLog(id, entries);
    const texts = entries.map((entry) => JSON.stringify(entry));
    await inTransaction(this.pool, async (client) => {
      // Two gateways may archive the same log at once: the entries' and the log's keys make the second a no-op.
      await client.query(
        `INSERT INTO archived_entries (generation_id, "offset", entry)
         SELECT $1, o, e FROM unnest($2::integer[], $3::text[]) AS t(o, e)
         ON CONFLICT DO NOTHING`,
        [id, texts.map((_, i) => i + 1), texts],
      );
      await client.query("INSERT INTO archived_logs (generation_id, last_offset) VALUES ($1, $2) ON CONFLICT DO NOTHING", [
        id,
        texts.length,
      ]);
    });
  }

  async head(id: string): Promise<LogHead | undefined> {
    const result = await this.pool.query<{ last_offset: number }>("SELECT last_offset FROM archived_logs WHERE generation_id = $1", [id]);
    const row = result.rows[0];
    return row ? { lastOffset: row.last_offset, terminal: true } : undefined;
  }

  async read(id: string, afterOffset: number, limit: number): Promise<Entry[]> {
    const result = await this.pool.query<{ entry: string }>(
      `SELECT entry FROM archived_entries WHERE generation_id = $1 AND "offset" > $2 ORDER BY "offset" LIMIT $3`,
      [id, afterOffset, limit],
    );
    return result.rows.map((row) => JSON.parse(row.entry) as Entry);
  }

  async generations(after: string | undefined, limit: number): Promise<GenerationsPage> {
    const result = await this.pool.query<{ generation_id: string }>(
      "SELECT generation_id FROM archived_logs WHERE generation_id > $1 ORDER BY generation_id LIMIT $2",
      [after ?? "", limit + 1],
    );
    return pageOf(
      result.rows.map((row) => row.generation_id),
      limit,
    );
  }

  async position(reader: string): Promise<string | undefined> {
    const result = await this.pool.query<{ position: string }>("SELECT position FROM archive_positions WHERE reader = $1", [reader]);
    return result.rows[0]?.position;
  }

  async setPosition(reader: string, position: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO archive_positions (reader, position) VALUES ($1, $2)
       ON CONFLICT (reader) DO UPDATE SET position = excluded.position, updated_at = now()`,
      [reader, position],
    );
  }

  async ping(): Promise<void> {
    await this.pool.query("SELECT 1");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
