import pg from "pg";
import type { Logger } from "../../observability/logger.ts";
import { postgresUrlProblem, redactedUrl } from "./url.ts";

export { postgresUrlProblem, redactedUrl };

/**
 * The PostgreSQL connection of the parts that keep data there (the archive, the read models): one
 * `pg` pool per part, opened from `LIFELINE_POSTGRES_URL`. Parts never share a pool, so a slow
 * rebuild of the read models cannot starve the archive of connections.
 */

/** Options of {@link connectPostgres}. */
export interface PostgresOptions {
  /** Shown in `pg_stat_activity`: which part of which process holds a connection. */
  readonly application: string;
  /** Most connections the pool opens. @defaultValue 4 */
  readonly max?: number;
  /** Where idle-connection errors go (a server restart, a cut): logged, never thrown. */
  readonly logger?: Logger;
}

/** How long one connection attempt may take before it counts as a failure. */
const CONNECT_TIMEOUT_MS = 5_000;

/** A pool on `url` (checked with {@link postgresUrlProblem} first). No connection is opened until the first query. */
export function connectPostgres(url: string, options: PostgresOptions): pg.Pool {
  const problem = postgresUrlProblem(url);
  if (problem) throw new Error(`LIFELINE_POSTGRES_URL ${problem}`);
  const pool = new pg.Pool({
    connectionString: url,
    application_name: options.application,
    max: options.max ?? 4,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
  });
  // An idle client's error (the server restarted) would otherwise be an uncaught 'error' event.
  pool.on("error", (error) => options.logger?.warn({ err: error.message, part: options.application }, "postgres connection error"));
  return pool;
}

/**
 * Runs `work` in one transaction on a connection of `pool` held for it: `BEGIN`, the work, then
 * `COMMIT`, or `ROLLBACK` and the work's error. The pool listens for errors only on the
 * connections it holds idle: one held here that the server ends (a restart, a kill, a cut) emits
 * an `error` event that nothing would listen to, an uncaught exception that would end the process.
 * Here that error is caught: the query in flight, or the next one, fails with it. A connection
 * whose transaction failed, broken or not, is dropped instead of going back to the pool.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error): void => {
    broken ??= error;
  };
  client.on("error", onError);
  let failed = false;
  try {
    await client.query("BEGIN");
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    failed = true;
    if (broken === undefined) await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    // Left on a broken connection, which may still say so again as it is dropped.
    if (broken === undefined) client.removeListener("error", onError);
    client.release(broken ?? failed);
  }
}

/** PostgreSQL did not answer for the whole retry budget at start. */
export class PostgresUnreachableError extends Error {
  constructor(url: string, budgetMs: number, cause: unknown) {
    super(`PostgreSQL at ${redactedUrl(url)} has not answered for ${budgetMs} ms: ${(cause as Error).message ?? String(cause)}`, {
      cause,
    });
    this.name = "PostgresUnreachableError";
  }
}

/**
 * Waits until `pool` answers `SELECT 1`, for at most `budgetMs`; throws {@link PostgresUnreachableError}
 * after. Run at start, so a wrong address or a server that is down fails the start with one clear
 * error instead of a crash loop.
 */
export async function awaitPostgres(pool: pg.Pool, url: string, budgetMs: number, logger?: Logger): Promise<void> {
  const deadline = Date.now() + budgetMs;
  let warned = false;
  for (;;) {
    try {
      await pool.query("SELECT 1");
      if (warned) logger?.info("postgres answers");
      return;
    } catch (error) {
      if (Date.now() >= deadline) throw new PostgresUnreachableError(url, budgetMs, error);
      if (!warned) logger?.warn({ err: (error as Error).message, url: redactedUrl(url) }, "postgres does not answer yet; retrying");
      warned = true;
      await new Promise((resolve) => setTimeout(resolve, Math.min(500, Math.max(0, deadline - Date.now()))));
    }
  }
}
