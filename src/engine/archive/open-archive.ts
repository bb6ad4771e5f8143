import type { Logger } from "../../observability/logger.ts";
import type { Archive } from "./port.ts";

/**
 * Which archive a process keeps (`LIFELINE_ARCHIVE`, decision 039): `postgres` (the distributed
 * mode's, shared by every gateway), `sqlite` (`archive.db` in the data dir: one machine without
 * PostgreSQL), or none.
 */
export type ArchiveConfig =
  { readonly kind: "none" } | { readonly kind: "sqlite"; readonly dataDir: string } | { readonly kind: "postgres"; readonly url: string };

/**
 * The archive the options name: `auto` is PostgreSQL when `LIFELINE_POSTGRES_URL` is set, else
 * none (the sqlite engine keeps every log, and a Redis deployment that wants its answers past the
 * retention says where: PostgreSQL, or `sqlite` on one machine).
 */
export function archiveConfigOf(options: {
  archive: "auto" | "off" | "sqlite" | "postgres";
  postgresUrl: string;
  dataDir: string;
}): ArchiveConfig {
  switch (options.archive) {
    case "off":
      return { kind: "none" };
    case "sqlite":
      return { kind: "sqlite", dataDir: options.dataDir };
    case "postgres":
      return { kind: "postgres", url: options.postgresUrl };
    case "auto":
      return options.postgresUrl === "" ? { kind: "none" } : { kind: "postgres", url: options.postgresUrl };
  }
}

/**
 * Opens the archive `config` names (`undefined` for none). PostgreSQL is waited for up to
 * `budgetMs` and its schema migrated; a server that stays down fails the open with
 * `PostgresUnreachableError`, which names the address. The adapters load on demand: a process
 * without an archive never loads the PostgreSQL driver.
 */
export async function openArchive(config: ArchiveConfig, options: { budgetMs: number; logger?: Logger }): Promise<Archive | undefined> {
  switch (config.kind) {
    case "none":
      return undefined;
    case "sqlite": {
      const { SqliteArchive } = await import("./sqlite.ts");
      return new SqliteArchive(config.dataDir);
    }
    case "postgres": {
      const { openPostgresArchive } = await import("./postgres.ts");
      return openPostgresArchive({ url: config.url, budgetMs: options.budgetMs, ...(options.logger ? { logger: options.logger } : {}) });
    }
  }
}
