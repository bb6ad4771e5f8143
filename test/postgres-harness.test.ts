import pg from "pg";
import { afterAll, describe, expect, test, vi } from "vitest";
import { postgresAvailable, requirePostgres, startPostgres } from "./support/postgres-harness.ts";
import { tempDir } from "./support/temp-dir.ts";

describe("requirePostgres", () => {
  const empty = tempDir("lifeline-no-postgres-");
  afterAll(() => empty.remove());

  test("fails the test under CI=true when PostgreSQL is missing", () => {
    const notes: (string | undefined)[] = [];
    expect(() => requirePostgres({ skip: (note) => void notes.push(note) }, { PATH: empty.path, CI: "true" })).toThrow(
      /initdb and postgres are not on PATH.*CI must run/,
    );
    expect(notes).toEqual([]);
  });

  test("skips with a loud warning outside CI when PostgreSQL is missing", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const notes: (string | undefined)[] = [];
    requirePostgres({ skip: (note) => void notes.push(note) }, { PATH: empty.path });
    expect(notes).toEqual([expect.stringMatching(/initdb and postgres are not on PATH/)]);
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/SKIPPING A POSTGRESQL TEST/));
    warn.mockRestore();
  });
});

describe("startPostgres", () => {
  test("starts a private server on a free loopback port with its own database, and stops it", async (ctx) => {
    requirePostgres(ctx);
    expect(postgresAvailable()).toBe(true);
    const [a, b] = await Promise.all([startPostgres(), startPostgres({ database: "other" })]);
    try {
      expect(a.port).not.toBe(5432);
      expect(a.port).not.toBe(b.port);
      expect(a.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/lifeline$/);
      const client = new pg.Client({ connectionString: a.url });
      await client.connect();
      await client.query("CREATE TABLE t (x int)");
      await client.query("INSERT INTO t VALUES (7)");
      expect((await client.query("SELECT x FROM t")).rows).toEqual([{ x: 7 }]);
      expect((await client.query("SELECT current_database() AS db")).rows).toEqual([{ db: "lifeline" }]);
      await client.end();
      const second = await b.createDatabase("second");
      expect(second).toBe(b.url.replace(/other$/, "second"));
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    expect(a.isRunning()).toBe(false);
    const refused = new pg.Client({ connectionString: a.url, connectionTimeoutMillis: 2_000 });
    refused.on("error", () => undefined);
    await expect(refused.connect()).rejects.toThrow();
  });

  test("a killed server restarts on the same data and port", async (ctx) => {
    requirePostgres(ctx);
    const server = await startPostgres();
    try {
      const write = new pg.Client({ connectionString: server.url });
      await write.connect();
      await write.query("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)");
      await write.end();
      const before = server.pid;
      await server.kill();
      expect(server.isRunning()).toBe(false);
      await server.restart();
      expect(server.pid).not.toBe(before);
      const read = new pg.Client({ connectionString: server.url });
      await read.connect();
      try {
        expect((await read.query("SELECT x FROM kept")).rows).toEqual([{ x: 1 }]);
      } finally {
        await read.end();
      }
    } finally {
      await server.stop();
    }
  });
});
