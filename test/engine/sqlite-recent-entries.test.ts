import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import type { EntryBody } from "../../src/core/entries.ts";
import { SqliteEngine } from "../../src/engine/sqlite/sqlite-engine.ts";
import { tempDirsPerTest } from "../support/temp-dirs-per-test.ts";
import { never } from "../support/waits.ts";

const delta = (attempt: number, text: string): EntryBody => ({ type: "delta", attempt, text });

describe("the sqlite engine's reads of what it just committed", () => {
  const dir = tempDirsPerTest("lifeline-recent-");
  const engines: SqliteEngine[] = [];
  const open = (path: string): SqliteEngine => {
    const engine = new SqliteEngine({ dataDir: path });
    engines.push(engine);
    return engine;
  };
  afterEach(async () => {
    for (const engine of engines.splice(0)) await engine.close(); // before their folders go
  });

  it("answer every read as a fresh engine reading the file does, whatever the cursor and the limit", async () => {
    const path = dir();
    const writer = open(path);
    const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "recent" }] });
    const claim = await writer.claim("w", 60_000, never);
    let offset = 2;
    // Single entries, batches, a tool call and the end: more entries than are kept in memory.
    for (let i = 0; i < 12; i++) {
      const batch = Array.from({ length: 1 + (i % 3) }, (_, j) => delta(claim!.fence, `t${i}.${j} "é" \u{1F600}`));
      expect((await writer.append(id, claim!.fence, offset, batch)).kind).toBe("appended");
      offset += batch.length;
    }
    const end: EntryBody = {
      type: "completed",
      attempt: claim!.fence,
      finishReason: "stop",
      usage: { promptTokens: 1, completionTokens: 2 },
    };
    expect((await writer.append(id, claim!.fence, offset, [end])).kind).toBe("appended");

    const fresh = open(path); // another connection: nothing kept, every read from the file
    for (let after = 0; after <= offset + 1; after++) {
      for (const limit of [1, 2, 5, 100]) {
        expect(await writer.read(id, after, limit), `after ${after}, limit ${limit}`).toEqual(await fresh.read(id, after, limit));
      }
    }
  });

  it("are served from memory, a read past them goes to the file for what another process appended, and what is kept never skips it", async () => {
    const path = dir();
    const writer = open(path);
    const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "memory" }] });
    const claim = await writer.claim("w", 60_000, never);
    await writer.append(id, claim!.fence, 2, [delta(claim!.fence, "a"), delta(claim!.fence, "b")]);
    const kept = await writer.read(id, 1, 10);
    expect(kept.map((e) => e.offset)).toEqual([2, 3]);

    // Another process appends after them (the same fence: a writer of its own would hold it).
    const other = open(path);
    expect((await other.append(id, claim!.fence, 4, [delta(claim!.fence, "c")])).kind).toBe("appended");
    expect((await writer.read(id, 3, 10)).map((e) => (e.type === "delta" ? e.text : e.type))).toEqual(["c"]);

    // The file loses the kept entries (this engine never deletes; the test does, to see where reads come from).
    const raw = new Database(join(path, "lifeline.db"));
    raw.prepare("DELETE FROM entries WHERE generation_id = ? AND offset IN (2, 3)").run(id);
    raw.close();
    expect(await writer.read(id, 1, 10)).toEqual(kept); // what it committed, from memory
    expect(await other.read(id, 1, 10)).toEqual([expect.objectContaining({ offset: 4 })]); // the file

    // This process appends after the other's entry: what it keeps starts again there, with no gap.
    expect((await writer.append(id, claim!.fence, 5, [delta(claim!.fence, "d")])).kind).toBe("appended");
    expect((await writer.read(id, 3, 10)).map((e) => (e.type === "delta" ? e.text : e.type))).toEqual(["c", "d"]);
  });

  /** How a wait at `afterOffset` ended: at once or after a wake (`returned`), or only when given up after 5 s (`gave up`). */
  const waitAt = async (engine: SqliteEngine, id: string, afterOffset: number): Promise<string> => {
    const giveUp = AbortSignal.timeout(5_000);
    await engine.wait(id, afterOffset, giveUp);
    return giveUp.aborted ? "gave up" : "returned";
  };

  it("a wait at an offset its own commits went past returns at once, a cancel's too", async () => {
    const engine = open(dir());
    const { id } = await engine.create({ model: "sim", messages: [{ role: "user", content: "cancel me" }] });
    const claim = await engine.claim("w", 60_000, never);
    await engine.append(id, claim!.fence, 2, [delta(claim!.fence, "a")]);
    expect(await waitAt(engine, id, 1)).toBe("returned");
    // The engine writes the cancel itself, with its wake gone before the wait begins.
    expect(await engine.cancel(id)).toBe("cancelled");
    expect(await waitAt(engine, id, 2)).toBe("returned");
    expect((await engine.read(id, 2, 10)).map((e) => e.type)).toEqual(["cancelled"]);
  });

  it("a wait at the end of what it wrote returns for an entry another process appended before the wait began", async () => {
    const path = dir();
    const writer = open(path);
    const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "two writers" }] });
    const claim = await writer.claim("w", 60_000, never);
    await writer.append(id, claim!.fence, 2, [delta(claim!.fence, "a")]);
    // Another process appends after it, before this process waits at offset 2: the wake of that
    // commit went to the other process, and this one has seen no other connection commit yet.
    const other = open(path);
    expect((await other.append(id, claim!.fence, 3, [delta(claim!.fence, "b")])).kind).toBe("appended");
    expect(await waitAt(writer, id, 2)).toBe("returned");
    expect((await writer.read(id, 2, 10)).map((e) => e.offset)).toEqual([3]);
    // Its look at the file has now seen that commit, and wakes no later wait for it: a slower
    // reader waiting at offset 2 again is answered by the file, not by what this process wrote.
    expect(await waitAt(writer, id, 2)).toBe("returned");
  });
});
