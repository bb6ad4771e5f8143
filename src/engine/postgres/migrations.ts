import type pg from "pg";
import { inTransaction } from "./connection.ts";

/**
 * Versioned schema migrations for the parts that keep data in PostgreSQL. Each part (the archive,
 * the read models, …) owns an ordered list of migrations; {@link migrate} applies the ones a
 * database lacks, once, and records each in `lifeline_migrations` (part, version, name). Every
 * run holds one advisory lock for the whole database, so processes that start together apply
 * each migration exactly once; each part's pending migrations run in one transaction with their
 * records, so a migration that fails leaves nothing half applied.
 */

/** One step of a part's schema. Versions start at 1 and rise by 1; a released step is never edited. */
export interface Migration {
  readonly version: number;
  /** A short name, recorded with the version: a renamed or reordered list is refused at start. */
  readonly name: string;
  readonly sql: string;
}

/** What {@link migrate} did. */
export interface MigrationOutcome {
  /** The versions applied by this call (empty when the database was up to date). */
  readonly applied: readonly number[];
  /** The part's version after the call. */
  readonly version: number;
}

/** A migration failed, or the database's record does not match the code's list. */
export class MigrationError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "MigrationError";
  }
}

/** The one advisory lock of Lifeline's migrations (any constant; "lifeline" in ASCII). */
const MIGRATION_LOCK = 0x6c6966656c696e65n;

const LEDGER = `
CREATE TABLE IF NOT EXISTS lifeline_migrations (
  part       text        NOT NULL,
  version    integer     NOT NULL,
  name       text        NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (part, version)
)`;

/**
 * Brings `part`'s schema up to the last of `migrations`. Safe to call from every process at every
 * start: the first one applies, the others find it done. Throws {@link MigrationError} when a step
 * fails (naming it and PostgreSQL's reason), when the database holds a step the list does not
 * name the same way, or when it is ahead of the code (a newer release migrated it).
 */
export async function migrate(pool: pg.Pool, part: string, migrations: readonly Migration[]): Promise<MigrationOutcome> {
  checkList(part, migrations);
  try {
    return await inTransaction(pool, async (client) => {
      await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK.toString()]);
      await client.query(LEDGER);
      const done = await client.query<{ version: number; name: string }>(
        "SELECT version, name FROM lifeline_migrations WHERE part = $1 ORDER BY version",
        [part],
      );
      for (const row of done.rows) {
        const known = migrations[row.version - 1];
        if (!known)
          throw new MigrationError(
            `${part}: the database is at version ${row.version} (${row.name}), newer than this release knows (${migrations.length}); run the newer release`,
          );
        if (known.name !== row.name)
          throw new MigrationError(`${part}: version ${row.version} is "${row.name}" in the database but "${known.name}" in this release`);
      }
      const applied: number[] = [];
      for (const step of migrations.slice(done.rows.length)) {
        try {
          await client.query(step.sql);
        } catch (error) {
          throw new MigrationError(`${part}: migration ${step.version} (${step.name}) failed: ${(error as Error).message}`, error);
        }
        await client.query("INSERT INTO lifeline_migrations (part, version, name) VALUES ($1, $2, $3)", [part, step.version, step.name]);
        applied.push(step.version);
      }
      return { applied, version: migrations.length };
    });
  } catch (error) {
    if (error instanceof MigrationError) throw error;
    throw new MigrationError(`${part}: could not migrate: ${(error as Error).message}`, error);
  }
}

/** The list itself must be 1, 2, 3, … with a name each: a mistake here is the code's, found at start. */
function checkList(part: string, migrations: readonly Migration[]): void {
  migrations.forEach((step, i) => {
    if (step.version !== i + 1) throw new MigrationError(`${part}: migration ${i + 1} has version ${step.version}`);
    if (step.name.trim() === "") throw new MigrationError(`${part}: migration ${step.version} has no name`);
  });
}
