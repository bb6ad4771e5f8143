import { closeSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { Checkpointer } from "../../src/engine/sqlite/checkpointer.ts";
import { readLog } from "../../src/engine/read-log.ts";
import { SqliteEngine } from "../../src/engine/sqlite/sqlite-engine.ts";
import { tempDirsPerTest } from "../support/temp-dirs-per-test.ts";
import { never } from "../support/waits.ts";

describe("the sqlite checkpointer", () => {
  const dir = tempDirsPerTest("lifeline-checkpoint-");

  it("copies the engine's appends into the database file while the event loop does nothing", async () => {
    const path = dir();
    const engine = new SqliteEngine({ dataDir: path });
    const file = join(path, "lifeline.db");
    try {
      const { id } = await engine.create({ model: "sim", messages: [{ role: "user", content: "checkpointed" }] });
      const claim = await engine.claim("w", 60_000, never);
      const text = "x".repeat(2000);
      // About 400 KB of text: its log well under the 1,000 pages (4 MB) at which a commit of the event loop's connection would checkpoint.
      for (let offset = 2; offset < 200; offset += 10) {
        const batch = Array.from({ length: 10 }, () => ({ type: "delta" as const, attempt: claim!.fence, text }));
        await engine.append(id, claim!.fence, offset, batch);
      }
      let size = statSync(file).size;
      for (let tries = 0; tries < 50 && size < 300_000; tries++) {
        await new Promise((r) => setTimeout(r, 100)); // no commit meanwhile
        size = statSync(file).size;
      }
      expect(size).toBeGreaterThan(300_000);
    } finally {
      await engine.close();
    }
  });

  it("keeps the log bounded under commits that never pause: the backstop lets it restart when the thread cannot", async () => {
    const { file, db, group } = walDatabase(dir(), "steady.db");
    // A backstop of 1,000 pages (4 MB) rather than the engine's 64 MB, for a test of 24 MB.
    const checkpointer = new Checkpointer(db, file, { backstopPages: 1000 });
    try {
      let largest = 0;
      // About 24 MB, a group commit every turn: the thread's passive checkpoints rarely end with every frame copied.
      for (let turn = 0; turn < 600; turn++) {
        group();
        await new Promise((resolve) => setImmediate(resolve));
        if (turn % 50 === 0) largest = Math.max(largest, statSync(`${file}-wal`).size);
      }
      expect(largest).toBeLessThan(12 << 20);
    } finally {
      await checkpointer.stop();
      db.close();
    }
  });

  it("with a restart statement, starts the log over itself with the commits held: bounded under a commit every 2 ms, with no backstop", async () => {
    const { file, db, group } = walDatabase(dir(), "restarts.db", "CREATE TABLE restarts (n INTEGER); INSERT INTO restarts VALUES (0)");
    const checkpointer = new Checkpointer(db, file, {
      backstopPages: 1_000_000, // no backstop: only the thread can let the log start over
      restart: { sql: "UPDATE restarts SET n = n + 1", catchUpPages: 1000 },
    });
    try {
      let largest = 0;
      let groups = 0;
      // About 24 MB, a group commit every 2 ms while the commits are not held: without the thread's
      // restarts the log would hold all of it.
      for (let turn = 0; groups < 600; turn++) {
        if (!checkpointer.holdsWrites()) {
          group();
          groups++;
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
        if (turn % 25 === 0) largest = Math.max(largest, statSync(`${file}-wal`).size);
      }
      expect(largest).toBeLessThan(12 << 20);
      expect(db.prepare("SELECT n FROM restarts").pluck().get()).toBeGreaterThan(0);
      expect(db.prepare("SELECT count(*) FROM t").pluck().get()).toBe(600 * 20);
    } finally {
      await checkpointer.stop();
      db.close();
    }
  });

  it("every append is committed once, in order, while the engine's thread starts the log over again and again", async () => {
    const path = dir();
    const engine = new SqliteEngine({ dataDir: path });
    let check: Database.Database | undefined;
    try {
      const { id } = await engine.create({ model: "sim", messages: [{ role: "user", content: "restarted" }] });
      const claim = await engine.claim("w", 60_000, never);
      const fence = claim!.fence;
      check = new Database(join(path, "lifeline.db"), { readonly: true });
      const restartsPage = check.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'log_restarts'").pluck().get();
      const wal = join(path, "lifeline.db-wal");
      const opened = walGeneration(wal).restarts;
      // The page of each log started over since the engine opened, as the bursts find it.
      const firstPages: number[] = [];
      let seen = opened;
      let offset = 2;
      // Bursts with pauses between them: the thread finds the log copied whole and starts it over.
      for (let burst = 0; burst < 20; burst++) {
        const appends = Array.from({ length: 50 }, (_, i) =>
          engine.append(id, fence, offset + i, [{ type: "delta", attempt: fence, text: `${offset + i};` }]),
        );
        for (const result of await Promise.all(appends)) expect(result.kind).toBe("appended");
        offset += 50;
        await new Promise((r) => setTimeout(r, 60));
        const generation = walGeneration(wal);
        if (generation.restarts !== seen) firstPages.push(generation.firstPage);
        seen = generation.restarts;
      }
      // The logs that started over begin with the thread's frame (the page of its one row), not
      // with an engine's commit (page 1 first: its commits grow the file). On a machine busy enough
      // to deschedule the thread between its steps, an engine's commit can still start one over
      // (decision 077): nearly every one is the thread's.
      const threads = firstPages.filter((page) => page === restartsPage).length;
      expect(firstPages.length).toBeGreaterThanOrEqual(4);
      expect(threads / firstPages.length).toBeGreaterThanOrEqual(0.75);
      const entries = await readLog(engine, id);
      expect(entries.map((e) => e.offset)).toEqual(Array.from({ length: offset - 1 }, (_, i) => i + 1));
      const texts = entries.flatMap((e) => (e.type === "delta" ? [e.text] : []));
      expect(texts).toEqual(Array.from({ length: offset - 2 }, (_, i) => `${i + 2};`));
      expect(check.prepare("SELECT count FROM log_restarts").pluck().get()).toBeGreaterThan(0);
    } finally {
      check?.close();
      await engine.close();
    }
  });

  it("turns the connection's own checkpoints down to a backstop while it runs, and back to sqlite's default if its thread fails", async () => {
    const path = dir();
    const db = new Database(join(path, "a.db"));
    try {
      db.pragma("journal_mode = WAL");
      const running = new Checkpointer(db, join(path, "a.db"));
      expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(16_000);
      await running.stop();

      const failing = new Checkpointer(db, join(path, "no such file.db"), { everyMs: 10 }); // its thread cannot open the file
      for (let tries = 0; tries < 50 && db.pragma("wal_autocheckpoint", { simple: true }) !== 1000; tries++)
        await new Promise((r) => setTimeout(r, 20));
      expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
      await failing.stop();
    } finally {
      db.close();
    }
  });
});

/** A WAL-mode database `name` in `path` with a table `t` (and `sql` run), and a group commit of 20 rows of 2 KB into it. */
function walDatabase(path: string, name: string, sql = ""): { file: string; db: Database.Database; group: () => void } {
  const file = join(path, name);
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(`CREATE TABLE t (x TEXT); ${sql}`);
  const insert = db.prepare("INSERT INTO t VALUES (?)");
  const group = db.transaction(() => {
    for (let i = 0; i < 20; i++) insert.run("y".repeat(2000));
  });
  return { file, db, group };
}

/**
 * Which start of a write-ahead log the file holds: its header's checkpoint sequence number (one more
 * at each start) and the database page of its first frame (after the 32-byte header, the frame's
 * first 4 bytes).
 */
function walGeneration(wal: string): { restarts: number; firstPage: number } {
  const bytes = Buffer.alloc(36);
  const fd = openSync(wal, "r");
  try {
    readSync(fd, bytes, 0, 36, 0);
  } finally {
    closeSync(fd);
  }
  return { restarts: bytes.readUInt32BE(12), firstPage: bytes.readUInt32BE(32) };
}
