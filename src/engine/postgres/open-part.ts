import type pg from "pg";
import type { Logger } from "../../observability/logger.ts";
import { awaitPostgres, connectPostgres } from "./connection.ts";
import { migrate, type Migration } from "./migrations.ts";

/** Options of {@link openPostgresPart}. */
export interface PostgresPartOptions {
  /** `LIFELINE_POSTGRES_URL`. */
  readonly url: string;
  /** The part's name: its migrations are recorded under it, and its connections carry it. */
  readonly part: string;
  /** The part's schema, in order (see {@link Migration}). */
  readonly migrations: readonly Migration[];
  /** How long PostgreSQL may stay unreachable at start before the open fails. @defaultValue 10 000 ms */
  readonly budgetMs?: number;
  /** @defaultValue 4 */
  readonly maxConnections?: number;
  readonly logger?: Logger;
}

/**
 * What a part that keeps data in PostgreSQL calls once at start: a pool, PostgreSQL answering
 * (within the budget), and the part's schema migrated. Throws `PostgresUnreachableError` or
 * `MigrationError` with a message that says what to fix; the pool is closed then.
 */
export async function openPostgresPart(options: PostgresPartOptions): Promise<pg.Pool> {
  const pool = connectPostgres(options.url, {
    application: `lifeline-${options.part}`,
    ...(options.maxConnections === undefined ? {} : { max: options.maxConnections }),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  try {
    await awaitPostgres(pool, options.url, options.budgetMs ?? 10_000, options.logger);
    const outcome = await migrate(pool, options.part, options.migrations);
    if (outcome.applied.length > 0) options.logger?.info({ part: options.part, applied: outcome.applied }, "postgres schema migrated");
    return pool;
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}
