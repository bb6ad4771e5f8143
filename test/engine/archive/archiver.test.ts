import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import type { EntryBody } from "../../../src/core/entries.ts";
import { Archiver } from "../../../src/engine/archive/archiver.ts";
import type { Archive } from "../../../src/engine/archive/port.ts";
import { openPostgresArchive } from "../../../src/engine/archive/postgres.ts";
import type { Engine } from "../../../src/engine/port.ts";
import { readLog } from "../../../src/engine/read-log.ts";
import { MemoryEngine } from "../../../src/engine/memory/memory-engine.ts";
import { RedisEngine } from "../../../src/engine/redis/redis-engine.ts";
import { SqliteEngine } from "../../../src/engine/sqlite/sqlite-engine.ts";
import { postgresAvailable, requirePostgres, startPostgres, type PostgresServer } from "../../support/postgres-harness.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../../support/redis-harness.ts";
import { tempDir } from "../../support/temp-dir.ts";
import { never, until } from "../../support/waits.ts";

/**
 * The archiver on each engine's change feed (memory, sqlite, a real Redis) into a real PostgreSQL: it copies every log that ends (completed,
 * failed, cancelled) and nothing that runs, resumes from its recorded position after a restart
 * with what ended meanwhile, and two of them at once (two gateways) leave one copy of each.
 */

let redis: RedisServer | undefined;
let postgres: PostgresServer | undefined;
let databases = 0;
beforeAll(async () => {
  if (redisAvailable()) redis = await startStandalone();
  if (postgresAvailable()) postgres = await startPostgres();
});
afterAll(async () => Promise.all([redis?.stop(), postgres?.stop()]));

type Ending = "completed" | "failed" | "cancelled" | "running";

/** An answer written through the engine's fenced appends, ended the way `ending` says. */
async function answer(engine: Engine, ending: Ending, text: string): Promise<string> {
  const { id } = await engine.create({ model: "sim", messages: [{ role: "user", content: text }] });
  const claim = await engine.claim("archiver-test", 60_000, never);
  if (claim?.id !== id) throw new Error("claimed another job");
  const f = claim.fence;
  const body: EntryBody[] = [
    { type: "started", attempt: f, worker: "archiver-test", model: "sim" },
    { type: "delta", attempt: f, text },
  ];
  if (ending === "completed")
    body.push({ type: "completed", attempt: f, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 1 } });
  if (ending === "failed") body.push({ type: "failed", attempt: f, error: { code: "model_error", message: "it broke" } });
  const result = await engine.append(id, f, 2, body);
  if (result.kind !== "appended") throw new Error(`append: ${result.kind}`);
  if (ending === "cancelled") expect(await engine.cancel(id)).toBe("cancelled");
  return id;
}

const dirs = tempDir("lifeline-archiver-");
afterAll(() => dirs.remove());

const ENGINES = [
  { name: "memory", open: (): Engine => new MemoryEngine() },
  { name: "sqlite", open: (): Engine => new SqliteEngine({ dataDir: `${dirs.path}/${databases}` }) },
  {
    name: "Redis",
    needsRedis: true,
    open: (): Engine => new RedisEngine({ target: { mode: "standalone", url: redis?.url ?? "" }, prefix: `arc${databases}` }),
  },
];

describe.each(ENGINES)("the archiver on $name and PostgreSQL", ({ open: openEngine, needsRedis }) => {
  let engine: Engine;
  let archive: Archive;
  let url: string;
  const running: Archiver[] = [];

  beforeEach(async (ctx) => {
    if (needsRedis) requireRedis(ctx);
    requirePostgres(ctx);
    if (!postgres) return;
    url = await postgres.createDatabase(`archiver_${++databases}`);
    engine = openEngine();
    archive = await openPostgresArchive({ url });
    return async () => {
      await Promise.all(running.splice(0).map((a) => a.stop()));
      await archive.close();
      await engine.close();
    };
  });

  function archiver(into: Archive = archive): Archiver {
    const started = new Archiver({ engine, archive: into, maxBackoffMs: 200 });
    running.push(started);
    started.start();
    return started;
  }

  async function archivedAsLive(id: string): Promise<void> {
    const live = (await readLog(engine, id)).map((e) => JSON.stringify(e));
    expect((await archive.read(id, 0, 1000)).map((e) => JSON.stringify(e))).toEqual(live);
  }

  test("every log that ends is copied entry for entry; one that runs is not, until it ends", async () => {
    const a = archiver();
    const ended = [
      await answer(engine, "completed", "one"),
      await answer(engine, "failed", "two"),
      await answer(engine, "cancelled", "three"),
    ];
    const open = await answer(engine, "running", "four");
    for (const id of ended) await until(async () => (await archive.head(id)) !== undefined, 30_000, `${id} archived`);
    for (const id of ended) await archivedAsLive(id);
    expect(await archive.head(open)).toBeUndefined();
    expect(await engine.cancel(open)).toBe("cancelled");
    await until(async () => (await archive.head(open)) !== undefined, 30_000, `${open} archived once it ended`);
    await archivedAsLive(open);
    expect(a.stats()).toMatchObject({ archived: 4, lost: 0 });
  });

  test("a restarted archiver catches up from its recorded position with what ended while it was down", async () => {
    const first = archiver();
    const before = await answer(engine, "completed", "before");
    await until(async () => (await archive.head(before)) !== undefined, 30_000, "the first answer archived");
    await until(async () => first.stats().position !== undefined && (await archive.position("archiver")) === first.stats().position);
    await first.stop();

    const meanwhile = [
      await answer(engine, "completed", "m1"),
      await answer(engine, "failed", "m2"),
      await answer(engine, "cancelled", "m3"),
    ];
    for (const id of meanwhile) expect(await archive.head(id)).toBeUndefined();

    const second = archiver(await openPostgresArchive({ url })); // a new process: its own connection
    for (const id of meanwhile) await until(async () => (await archive.head(id)) !== undefined, 30_000, `${id} archived after the restart`);
    for (const id of meanwhile) await archivedAsLive(id);
    // It started where the first stopped: nothing before that was looked at again.
    expect(second.stats()).toMatchObject({ archived: 3, alreadyArchived: 0, lost: 0 });
  });

  test("at its first start it sweeps the logs that ended before it followed the feed", async () => {
    const earlier = [await answer(engine, "completed", "early"), await answer(engine, "cancelled", "early too")];
    const open = await answer(engine, "running", "still going");
    const a = archiver();
    for (const id of earlier) await until(async () => (await archive.head(id)) !== undefined, 30_000, `${id} archived`);
    for (const id of earlier) await archivedAsLive(id);
    expect(await archive.head(open)).toBeUndefined();
    expect(a.stats().sweeps).toBe(1);
  });

  test("two archivers at once (two gateways) leave exactly one copy of each log", async () => {
    archiver();
    archiver(await openPostgresArchive({ url }));
    const ids: string[] = [];
    for (const [i, t] of ["a", "b", "c", "d", "e", "f"].entries()) ids.push(await answer(engine, i % 2 ? "failed" : "completed", t));
    for (const id of ids) await until(async () => (await archive.head(id)) !== undefined, 30_000, `${id} archived`);
    for (const id of ids) await archivedAsLive(id);
  });
});

describe("the archiver behind a trimmed feed", () => {
  test("when records were dropped before it read them, it sweeps every log the engine holds and archives the ended ones", async (ctx) => {
    requirePostgres(ctx);
    if (!postgres) throw new Error("no PostgreSQL");
    const engine = new MemoryEngine({ feedLimit: 3 });
    const archive = await openPostgresArchive({ url: await postgres.createDatabase("trimmed_feed") });
    try {
      const first = new Archiver({ engine, archive, maxBackoffMs: 200 });
      first.start();
      const early = await answer(engine, "completed", "early");
      await until(async () => (await archive.head(early)) !== undefined, 30_000, "the first answer archived");
      await until(async () => (await archive.position("archiver")) !== undefined);
      await first.stop();
      // Each answer writes several feed records; with 3 kept, the ones after the position are gone.
      const missed: string[] = [];
      for (const t of ["m1", "m2", "m3", "m4"]) missed.push(await answer(engine, "completed", t));
      expect((await engine.changes(await archive.position("archiver"), 10)).gap).toBe(true);

      const second = new Archiver({ engine, archive, maxBackoffMs: 200 });
      second.start();
      try {
        for (const id of missed) await until(async () => (await archive.head(id)) !== undefined, 30_000, `${id} archived by the sweep`);
        expect(second.stats()).toMatchObject({ sweeps: 1, lost: 0 });
      } finally {
        await second.stop();
      }
    } finally {
      await archive.close();
      await engine.close();
    }
  });
});
