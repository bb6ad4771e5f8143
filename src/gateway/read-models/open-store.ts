import type { Logger } from "../../observability/logger.ts";
import { MemoryReadModelStore } from "../../projections/store/memory.ts";
import type { ReadModelStore } from "../../projections/store/port.ts";
import { SqliteReadModelStore } from "./sqlite-store.ts";

/** The options that choose the read models' store (`LIFELINE_READ_MODELS` and what `auto` looks at). */
export interface ReadModelStoreConfig {
  readonly readModels: "auto" | "sqlite" | "postgres" | "memory";
  readonly postgresUrl: string;
  readonly dataDir: string;
  readonly engine: string;
  readonly redisPrefix: string;
}

/**
 * The sqlite file of the read models: `projections.db` beside the sqlite engine's data file, and
 * one per Redis prefix for a Redis deployment, so that deployments sharing a data dir never mix
 * their rows or their feed positions.
 */
export function readModelFileOf(config: Pick<ReadModelStoreConfig, "engine" | "redisPrefix">): string {
  return config.engine === "redis" ? `projections-redis-${config.redisPrefix}.db` : "projections.db";
}

/** Which store `config` asks for: `auto` is PostgreSQL when a URL is set, memory with the memory engine, else sqlite. */
export function readModelStoreKind(config: ReadModelStoreConfig): "sqlite" | "postgres" | "memory" {
  if (config.readModels !== "auto") return config.readModels;
  if (config.postgresUrl !== "") return "postgres";
  return config.engine === "memory" ? "memory" : "sqlite";
}

/**
 * Opens the read models' store: PostgreSQL waits for the server within `budgetMs` and migrates its
 * schema, failing with a clear error when it stays down; sqlite opens {@link readModelFileOf} in the data dir.
 */
export async function openReadModelStore(
  config: ReadModelStoreConfig,
  options: { budgetMs?: number; logger?: Logger } = {},
): Promise<ReadModelStore> {
  switch (readModelStoreKind(config)) {
    case "postgres": {
      // pg is loaded only for PostgreSQL (decision 070).
      const { openPostgresReadModels } = await import("./postgres-store.ts");
      return openPostgresReadModels({
        url: config.postgresUrl,
        ...(options.budgetMs === undefined ? {} : { budgetMs: options.budgetMs }),
        ...(options.logger ? { logger: options.logger } : {}),
      });
    }
    case "sqlite":
      return new SqliteReadModelStore(config.dataDir, readModelFileOf(config));
    case "memory":
      return new MemoryReadModelStore();
  }
}
