import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import {
  awaitPostgres,
  connectPostgres,
  inTransaction,
  postgresUrlProblem,
  PostgresUnreachableError,
  redactedUrl,
} from "../../../src/engine/postgres/connection.ts";
import { migrate, MigrationError, type Migration } from "../../../src/engine/postgres/migrations.ts";
import { openPostgresPart } from "../../../src/engine/postgres/open-part.ts";
import { postgresAvailable, requirePostgres, startPostgres, type PostgresServer } from "../../support/postgres-harness.ts";
import { refusedPort } from "../../support/refused-port.ts";
import { until } from "../../support/waits.ts";

describe("LIFELINE_POSTGRES_URL", () => {
  test.each([
    ["postgres://u:p@db.example:5432/lifeline", undefined],
    ["postgresql://db/lifeline?sslmode=require", undefined],
    ["mysql://db/lifeline", /postgres:\/\//],
    ["postgres://db", /must name a database/],
    ["postgres:///lifeline", /must name a host/],
    ["not a url", /must be postgres:\/\//],
  ])("%s", (url, problem) => {
    if (problem === undefined) expect(postgresUrlProblem(url)).toBeUndefined();
    else expect(postgresUrlProblem(url)).toMatch(problem);
  });

  test("a password never reaches a message", () => {
    expect(redactedUrl("postgres://u:secret@db:5432/x")).toBe("postgres://u:***@db:5432/x");
  });
});

const steps: Migration[] = [
  { version: 1, name: "things", sql: "CREATE TABLE things (id text PRIMARY KEY)" },
  { version: 2, name: "things size", sql: "ALTER TABLE things ADD COLUMN size integer NOT NULL DEFAULT 0" },
];

describe("migrations on a real PostgreSQL", () => {
  let server: PostgresServer | undefined;
  let n = 0;
  // Without PostgreSQL, requirePostgres fails each test under CI and skips it elsewhere.
  beforeAll(async () => void (postgresAvailable() ? (server = await startPostgres()) : undefined));
  afterAll(async () => server?.stop());
  beforeEach((ctx) => requirePostgres(ctx));

  /** A fresh database per test, so each starts with no ledger. */
  async function freshPool(): Promise<pg.Pool> {
    if (!server) throw new Error("no server");
    const pool = new pg.Pool({ connectionString: await server.createDatabase(`m${++n}`), max: 8 });
    pool.on("error", () => undefined); // an idle connection the server ends: not what these tests look at
    return pool;
  }

  test("each step is applied once and recorded; a later start applies only what is new", async () => {
    const pool = await freshPool();
    try {
      expect(await migrate(pool, "archive", steps.slice(0, 1))).toEqual({ applied: [1], version: 1 });
      expect(await migrate(pool, "archive", steps)).toEqual({ applied: [2], version: 2 });
      expect(await migrate(pool, "archive", steps)).toEqual({ applied: [], version: 2 });
      // Another part's list is its own.
      expect(await migrate(pool, "projections", [{ version: 1, name: "p", sql: "CREATE TABLE p (x int)" }])).toEqual({
        applied: [1],
        version: 1,
      });
      const ledger = await pool.query("SELECT part, version, name FROM lifeline_migrations ORDER BY part, version");
      expect(ledger.rows).toEqual([
        { part: "archive", version: 1, name: "things" },
        { part: "archive", version: 2, name: "things size" },
        { part: "projections", version: 1, name: "p" },
      ]);
      await pool.query("INSERT INTO things (id) VALUES ('a')");
      expect((await pool.query("SELECT id, size FROM things")).rows).toEqual([{ id: "a", size: 0 }]);
    } finally {
      await pool.end();
    }
  });

  test("processes that start together apply each step exactly once", async () => {
    const pool = await freshPool();
    try {
      const outcomes = await Promise.all(Array.from({ length: 6 }, () => migrate(pool, "archive", steps)));
      expect(outcomes.flatMap((o) => o.applied).sort()).toEqual([1, 2]);
      expect(outcomes.every((o) => o.version === 2)).toBe(true);
    } finally {
      await pool.end();
    }
  });

  test("a failing step names itself and PostgreSQL's reason, and leaves nothing half applied", async () => {
    const pool = await freshPool();
    try {
      const broken: Migration[] = [...steps, { version: 3, name: "broken", sql: "ALTER TABLE things ADD COLUMN x nosuchtype" }];
      await migrate(pool, "archive", steps.slice(0, 1));
      const error = await migrate(pool, "archive", broken).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect((error as Error).message).toMatch(/archive: migration 3 \(broken\) failed: type "nosuchtype" does not exist/);
      // Step 2 ran in the same transaction as the failed 3: rolled back with it.
      const ledger = await pool.query("SELECT version FROM lifeline_migrations WHERE part = 'archive' ORDER BY version");
      expect(ledger.rows).toEqual([{ version: 1 }]);
      const columns = await pool.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'things'");
      expect(columns.rows.map((r: { column_name: string }) => r.column_name)).toEqual(["id"]);
      expect(await migrate(pool, "archive", steps)).toEqual({ applied: [2], version: 2 });
    } finally {
      await pool.end();
    }
  });

  test("a database that holds a step by another name, or is ahead of the release, is refused", async () => {
    const pool = await freshPool();
    try {
      await migrate(pool, "archive", steps);
      const renamed = [steps[0] as Migration, { ...(steps[1] as Migration), name: "sizes" }];
      await expect(migrate(pool, "archive", renamed)).rejects.toThrow(/version 2 is "things size" in the database but "sizes"/);
      await expect(migrate(pool, "archive", steps.slice(0, 1))).rejects.toThrow(/at version 2 .*newer than this release knows \(1\)/);
      await expect(migrate(pool, "archive", [{ ...(steps[1] as Migration) }])).rejects.toThrow(/migration 1 has version 2/);
    } finally {
      await pool.end();
    }
  });

  test("openPostgresPart connects, migrates and hands back the pool", async () => {
    if (!server) throw new Error("no server");
    const url = await server.createDatabase(`m${++n}`);
    const pool = await openPostgresPart({ url, part: "archive", migrations: steps });
    try {
      expect((await pool.query("SELECT count(*)::int AS n FROM things")).rows).toEqual([{ n: 0 }]);
    } finally {
      await pool.end();
    }
  });

  test("a transaction whose connection the server ends fails alone: the process goes on and the pool opens a new connection", async () => {
    if (!server) throw new Error("no server");
    const url = await server.createDatabase(`m${++n}`);
    const pool = connectPostgres(url, { application: "lifeline-held" });
    const admin = new pg.Pool({ connectionString: url });
    // The test's own pool: an idle connection's goodbye from the server (its shutdown at the end of
    // the file) reaches the pool as an 'error' event, which with no listener is an uncaught exception.
    admin.on("error", () => undefined);
    try {
      await pool.query("CREATE TABLE things (id text PRIMARY KEY)");
      const transaction = inTransaction(pool, async (client) => {
        await client.query("INSERT INTO things VALUES ('lost')");
        const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
        // The server ends this connection while it is held and idle between two queries: its
        // goodbye comes with no query to fail, as an 'error' event (uncaught, it ended the process).
        await admin.query("SELECT pg_terminate_backend($1)", [pid]);
        await until(
          async () => (await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid])).rowCount === 0,
          10_000,
          "the backend gone",
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
        await client.query("INSERT INTO things VALUES ('after')");
      });
      await expect(transaction).rejects.toThrow();
      // Nothing of it was committed, and the next transaction runs on a new connection.
      await inTransaction(pool, async (client) => void (await client.query("INSERT INTO things VALUES ('next')")));
      expect((await pool.query("SELECT id FROM things ORDER BY id")).rows).toEqual([{ id: "next" }]);
    } finally {
      await Promise.all([pool.end(), admin.end()]);
    }
  });
});

describe("PostgreSQL down", () => {
  test("a start against a server that does not answer fails once its budget is spent, with the address and no password", async () => {
    const port = await refusedPort();
    const url = `postgres://u:secret@127.0.0.1:${port}/lifeline`;
    const pool = connectPostgres(url, { application: "test" });
    const error = await awaitPostgres(pool, url, 300).catch((e: unknown) => e);
    await pool.end();
    expect(error).toBeInstanceOf(PostgresUnreachableError);
    expect((error as Error).message).toMatch(
      new RegExp(`PostgreSQL at postgres://u:\\*\\*\\*@127.0.0.1:${port}/lifeline has not answered for 300 ms: .*ECONNREFUSED`),
    );
    expect((error as Error).message).not.toContain("secret");
  });
});
