import { describe, expect, it } from "vitest";
import type { EntryBody } from "../../src/core/entries.ts";
import { readLog } from "../../src/engine/read-log.ts";
import { SqliteEngine } from "../../src/engine/sqlite/sqlite-engine.ts";
import { tempDirsPerTest } from "../support/temp-dirs-per-test.ts";
import { never } from "../support/waits.ts";

const delta = (attempt: number, text: string): EntryBody => ({ type: "delta", attempt, text });

describe("the sqlite engine's group commit", () => {
  const dir = tempDirsPerTest("lifeline-group-");
  const open = (path = dir()): SqliteEngine => new SqliteEngine({ dataDir: path });

  /** A generation claimed with fence 1, ready for appends at offset 2. */
  const claimed = async (engine: SqliteEngine, content: string): Promise<string> => {
    const { id } = await engine.create({ model: "sim", messages: [{ role: "user", content }] });
    const claim = await engine.claim("w", 60_000, never);
    expect(claim?.id).toBe(id);
    return id;
  };

  it("appends asked for in one turn are decided in order, each on what the ones before it left, and each gets its own outcome", async () => {
    const engine = open();
    try {
      const a = await claimed(engine, "a");
      const b = await claimed(engine, "b");
      // All asked for before any is awaited: one group.
      const outcomes = await Promise.all([
        engine.append(a, 1, 2, [delta(1, "one")]),
        engine.append(a, 1, 3, [delta(1, "two")]), // sees "one" committed before it in the same group
        engine.append(a, 1, 3, [delta(1, "two")]), // the same entry again: a duplicate, not a second copy
        engine.append(a, 1, 5, [delta(1, "gap")]), // not the next offset
        engine.append(b, 7, 2, [delta(7, "stale")]), // b's fence is 1
        engine.append(b, 1, 2, [delta(1, "bee")]),
        engine.append("gen_00000000000000000000000000", 1, 2, [delta(1, "nobody")]),
      ]);
      expect(outcomes).toEqual([
        { kind: "appended", nextOffset: 3 },
        { kind: "appended", nextOffset: 4 },
        { kind: "duplicate", nextOffset: 4 },
        { kind: "offsetConflict", lastOffset: 3 },
        { kind: "staleFence", fence: 1 },
        { kind: "appended", nextOffset: 3 },
        { kind: "notFound" },
      ]);
      expect((await readLog(engine, a)).map((e) => (e.type === "delta" ? e.text : e.type))).toEqual(["created", "one", "two"]);
      expect((await readLog(engine, b)).map((e) => (e.type === "delta" ? e.text : e.type))).toEqual(["created", "bee"]);
    } finally {
      await engine.close();
    }
  });

  it("a turn with many appends commits them in groups of at most 128, the event loop turning between groups, still in the order asked", async () => {
    const engine = open();
    try {
      const a = await claimed(engine, "a");
      const count = 300;
      const turnsBefore: number[] = [];
      let turns = 0;
      const appends = Array.from({ length: count }, (_, i) =>
        engine.append(a, 1, 2 + i, [delta(1, String(i))]).then((outcome) => {
          turnsBefore[i] = turns;
          return outcome;
        }),
      );
      // Counts the turns of the event loop while the appends commit.
      const ticking = (async () => {
        for (let i = 0; i < 10; i++) {
          await new Promise((resolve) => setImmediate(resolve));
          turns += 1;
        }
      })();
      const outcomes = await Promise.all(appends);
      await ticking;
      expect(outcomes.every((o, i) => o.kind === "appended" && o.nextOffset === 3 + i)).toBe(true);
      // The first group's appends resolve before the loop turns again; the last group's, turns later.
      expect(turnsBefore[0]).toBe(0);
      expect(turnsBefore[127]).toBe(turnsBefore[0]);
      expect(turnsBefore[128]).toBeGreaterThan(turnsBefore[0]!);
      expect(turnsBefore[count - 1]).toBeGreaterThan(turnsBefore[128]!);
      const log = await readLog(engine, a);
      expect(log.map((e) => (e.type === "delta" ? e.text : e.type))).toEqual([
        "created",
        ...Array.from({ length: count }, (_, i) => String(i)),
      ]);
    } finally {
      await engine.close();
    }
  });

  it("a malformed append fails by itself; the others of its turn commit", async () => {
    const engine = open();
    try {
      const a = await claimed(engine, "a");
      const [bad, good] = await Promise.allSettled([
        engine.append(a, 1, 2, [{ type: "cancelled", attempt: 1 }, delta(1, "after the end")]),
        engine.append(a, 1, 2, [delta(1, "fine")]),
      ]);
      expect(bad.status).toBe("rejected");
      expect((bad as PromiseRejectedResult).reason).toBeInstanceOf(RangeError);
      expect(good).toEqual({ status: "fulfilled", value: { kind: "appended", nextOffset: 3 } });
    } finally {
      await engine.close();
    }
  });

  it("a reader waiting on the log is woken once the group is committed, and reads it", async () => {
    const engine = open();
    try {
      const a = await claimed(engine, "a");
      const woken = engine.wait(a, 1, never).then(() => readLog(engine, a));
      await engine.append(a, 1, 2, [delta(1, "x")]);
      expect((await woken).map((e) => e.offset)).toEqual([1, 2]);
    } finally {
      await engine.close();
    }
  });

  it("close() commits what was asked before it; appends after it are refused; the file holds the group", async () => {
    const path = dir();
    const engine = open(path);
    const a = await claimed(engine, "a");
    const asked = engine.append(a, 1, 2, [delta(1, "last words")]);
    const closing = engine.close();
    expect(await asked).toEqual({ kind: "appended", nextOffset: 3 });
    await closing;
    await expect(engine.append(a, 1, 3, [delta(1, "too late")])).rejects.toThrow(/closed/);
    const again = open(path);
    try {
      expect((await readLog(again, a)).map((e) => (e.type === "delta" ? e.text : e.type))).toEqual(["created", "last words"]);
    } finally {
      await again.close();
    }
  });
});
