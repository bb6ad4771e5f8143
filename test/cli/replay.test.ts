import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { RedisEngine } from "../../src/engine/redis/redis-engine.ts";
import { SqliteEngine } from "../../src/engine/sqlite/sqlite-engine.ts";
import { readLog } from "../../src/engine/read-log.ts";
import { timelineOf, type Timeline } from "../../src/projections/timeline.ts";
import { writeEventfulLog } from "../support/eventful-log.ts";
import { requireRedis, startStandalone } from "../support/redis-harness.ts";
import { tempDir } from "../support/temp-dir.ts";
import { runLifeline, runLifelineHere, type CliRun } from "../support/run-cli.ts";
import Database from "better-sqlite3";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** `bin/lifeline replay …` as a user runs it. */
const lifeline = (args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> => runLifeline(["replay", ...args], env);
/** The same inside the test's process, for the refusals (see runLifelineHere). */
const lifelineHere = (args: readonly string[]): Promise<CliRun> => runLifelineHere(["replay", ...args]);

describe("lifeline replay, on the sqlite engine", () => {
  const dir = tempDir("lifeline-replay-");
  let id: string;
  let text: string;
  let entries: Entry[];
  beforeAll(async () => {
    const engine = new SqliteEngine({ dataDir: dir.path });
    ({ id, text } = await writeEventfulLog(engine));
    entries = await readLog(engine, id);
    await engine.close();
  });
  afterAll(() => dir.remove());

  it("prints the calls, the failure, the takeover, the rewind and the text", async () => {
    const run = await lifeline([id, "--data-dir", dir.path]);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const out = run.stdout;
    expect(out).toContain(`${id}  completed  model primary  12 entries`);
    expect(out).toContain("3 calls, 1 retried, 1 taken over, 1 rewound");
    expect(out).toMatch(/#1 {2}fence 1 {2}primary on worker-a .* → retrying \(model_timeout\)/);
    expect(out).toMatch(/#2 {2}fence 1 {2}fallback on worker-a .* → takeover/);
    expect(out).toMatch(/#3 {2}fence 2 {2}fallback on worker-b .* → completed/);
    expect(out).toContain("call failed (model_timeout: no token for 2000 ms); next in 250 ms");
    expect(out).toContain("took over from worker-a (fence 1 → 2)");
    expect(out).toContain("rewound to entry 4: 16 → 11 chars");
    expect(out.trimEnd().endsWith(`text (${text.length} chars):\n${text}`)).toBe(true);
  });

  it("--json is the timeline projection; --until replays up to an entry; --entries prints the log", async () => {
    const json = await lifeline([id, "--data-dir", dir.path, "--json"]);
    expect(JSON.parse(json.stdout)).toEqual(JSON.parse(JSON.stringify(timelineOf(id, entries))));
    const early = JSON.parse((await lifeline([id, "--data-dir", dir.path, "--json", "--until", "7"])).stdout) as Timeline;
    expect(early).toMatchObject({ status: "running", lastOffset: 7, text: "Hello there, old", takeovers: 0 });
    const raw = await lifeline([id, "--data-dir", dir.path, "--entries"]);
    expect(
      raw.stdout
        .trimEnd()
        .split("\n")
        .map((line) => JSON.parse(line) as Entry),
    ).toEqual(entries);
  });

  const otherId = (): string => id.slice(0, -1) + (id.endsWith("0") ? "1" : "0");
  it.each<[string, () => string[], number, RegExp]>([
    ["no id", () => [], 2, /give the id of the generation/],
    ["not an id", () => ["not-an-id"], 2, /"not-an-id" is not a generation id/],
    ["two ids", () => [id, id], 2, /one generation at a time/],
    ["--until 0", () => [id, "--until", "0"], 2, /--until must be an entry offset/],
    ["--until x", () => [id, "--until", "x"], 2, /--until must be an entry offset/],
    ["--json with --entries", () => [id, "--json", "--entries"], 2, /exclude each other/],
    ["an unknown flag", () => [id, "--bogus"], 2, /Unknown option '--bogus'/],
    ["the memory engine", () => [id, "--engine", "memory"], 2, /memory engine lives in one process/],
    ["postgres without a URL", () => [id, "--engine", "postgres"], 2, /LIFELINE_ENGINE|--engine/],
    ["a data dir with no data", () => [id, "--data-dir", `${dir.path}/nothing-here`], 1, /no Lifeline data in/],
    ["an id not in the data", () => [otherId(), "--data-dir", dir.path], 1, /no generation gen_\w+ in the sqlite engine/],
  ])("a mistake gets a clear message (%s): exit 2 for the command line, 1 for what is not there", async (_name, args, status, message) => {
    const run = await lifelineHere(args());
    expect({ args: args(), status: run.status }).toEqual({ args: args(), status });
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe("");
  });

  it("as a real process too: the shell gets 2 for a mistake of the command line and 1 for a generation that is not there", async () => {
    const [usage, missing] = await Promise.all([lifeline([]), lifeline([otherId(), "--data-dir", dir.path])]);
    expect([usage.status, usage.stdout, missing.status, missing.stdout]).toEqual([2, "", 1, ""]);
    expect(usage.stderr).toMatch(/give the id of the generation/);
    expect(missing.stderr).toMatch(/no generation gen_\w+ in the sqlite engine/);
  });

  it("--help prints the usage", async () => {
    const help = await lifeline(["--help"]);
    expect([help.status, help.stdout]).toEqual([0, expect.stringContaining("Usage: lifeline replay <generation-id>")]);
  });
});

describe("lifeline replay, when the engine cannot be read", () => {
  it("a Redis that does not answer is reported within seconds, exit 1", async () => {
    const run = await lifeline(["gen_01m8awt0zv3thxvszatkb9fe07", "--engine", "redis", "--redis-url", "redis://127.0.0.1:9"]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/the redis engine did not answer within 10 s/);
  }, 60_000);

  it("a data file of a newer Lifeline is refused, and replay writes nothing to it", async () => {
    const dir = tempDir("lifeline-replay-new-");
    try {
      const engine = new SqliteEngine({ dataDir: dir.path });
      await engine.close();
      const db = new Database(join(dir.path, "lifeline.db"));
      db.pragma("user_version = 999");
      db.close();
      const before = readFileSync(join(dir.path, "lifeline.db"));
      const run = await lifeline(["gen_01m8awt0zv3thxvszatkb9fe07", "--data-dir", dir.path]);
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/cannot open the sqlite engine: data file has schema 999/);
      expect(readFileSync(join(dir.path, "lifeline.db")).equals(before)).toBe(true);
    } finally {
      dir.remove();
    }
  });
});

describe("lifeline replay, on the Redis engine", () => {
  it("reads the log from Redis the same way", async (ctx) => {
    requireRedis(ctx);
    const server = await startStandalone();
    const prefix = `replay${process.pid}`;
    const engine = new RedisEngine({ target: { mode: "standalone", url: server.url }, prefix });
    try {
      const { id, text } = await writeEventfulLog(engine);
      const run = await lifeline([id, "--json"], {
        LIFELINE_ENGINE: "redis",
        LIFELINE_REDIS_URL: server.url,
        LIFELINE_REDIS_PREFIX: prefix,
      });
      expect(run.stderr).toBe("");
      expect(JSON.parse(run.stdout)).toMatchObject({ id, status: "completed", text, retries: 1, takeovers: 1, rewinds: 1 });
    } finally {
      await engine.close();
      await server.stop();
    }
  });
});
