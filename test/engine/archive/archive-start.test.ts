import { describe, expect, test } from "vitest";
import { refusedPort } from "../../support/refused-port.ts";
import { runLifeline } from "../../support/run-cli.ts";

describe("starting with an archive that cannot be", () => {
  test("a LIFELINE_POSTGRES_URL that is not one is a configuration error that says why", async () => {
    const run = await runLifeline(["start"], { LIFELINE_ENGINE: "memory", LIFELINE_PORT: "0", LIFELINE_POSTGRES_URL: "mysql://db/x" });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/LIFELINE_POSTGRES_URL = "mysql:\/\/db\/x": must start with postgres:\/\/ or postgresql:\/\//);
    const noDb = await runLifeline(["start"], {
      LIFELINE_ENGINE: "memory",
      LIFELINE_PORT: "0",
      LIFELINE_POSTGRES_URL: "postgres://u:secret@db",
    });
    expect(noDb.status).toBe(2);
    expect(noDb.stderr).toMatch(/LIFELINE_POSTGRES_URL = "postgres:\/\/u:\*\*\*@db": must name a database/);
    expect(noDb.stderr).not.toContain("secret");
    const missing = await runLifeline(["start"], { LIFELINE_ENGINE: "memory", LIFELINE_PORT: "0", LIFELINE_ARCHIVE: "postgres" });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/LIFELINE_ARCHIVE=postgres needs LIFELINE_POSTGRES_URL/);
  });

  test("PostgreSQL down at start: one clear error naming it (no password) once the retry budget is spent, and exit 1", async () => {
    const port = await refusedPort();
    const run = await runLifeline(["start"], {
      LIFELINE_ENGINE: "memory",
      LIFELINE_PORT: "0",
      LIFELINE_LOG_LEVEL: "silent",
      LIFELINE_ENGINE_RETRY_MS: "1000",
      LIFELINE_POSTGRES_URL: `postgres://lifeline:secret@127.0.0.1:${port}/lifeline`,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(
        `could not start: PostgreSQL at postgres://lifeline:\\*\\*\\*@127\\.0\\.0\\.1:${port}/lifeline has not answered for 1000 ms: .*ECONNREFUSED`,
      ),
    );
    expect(run.stderr).not.toContain("secret");
    expect(run.stderr).not.toMatch(/ready at/);
  });
});
