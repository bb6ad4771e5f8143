import { describe, expect, test } from "vitest";
import { withArchive } from "../../../src/engine/archive/archived-engine.ts";
import { MemoryArchive } from "../../../src/engine/archive/memory.ts";
import { MemoryEngine } from "../../../src/engine/memory/memory-engine.ts";
import { readLog } from "../../../src/engine/read-log.ts";
import { writeEventfulLog } from "../../support/eventful-log.ts";

/** An engine that never held the log stands for one whose retention dropped it. */
async function archivedElsewhere(): Promise<{ id: string; archive: MemoryArchive; entries: string[] }> {
  const origin = new MemoryEngine();
  const { id } = await writeEventfulLog(origin);
  const entries = await readLog(origin, id);
  const archive = new MemoryArchive();
  await archive.store(id, entries);
  return { id, archive, entries: entries.map((e) => JSON.stringify(e)) };
}

describe("an engine with an archive behind it", () => {
  test("a log the engine no longer holds is read from the archive: head, pages and the whole log", async () => {
    const { id, archive, entries } = await archivedElsewhere();
    const engine = withArchive(new MemoryEngine(), archive);
    expect(await engine.head(id)).toEqual({ lastOffset: entries.length, terminal: true });
    expect((await readLog(engine, id)).map((e) => JSON.stringify(e))).toEqual(entries);
    expect((await engine.read(id, 3, 2)).map((e) => JSON.stringify(e))).toEqual(entries.slice(3, 5));
    expect(await engine.cancel(id)).toBe("alreadyFinished");
    expect(await engine.head("gen_unknown")).toBeUndefined();
    expect(await engine.cancel("gen_unknown")).toBe("notFound");
    expect(engine.kind).toBe("memory");
  });

  test("a live log is read from the engine, never from a copy, and writes go to the engine", async () => {
    const { id, archive } = await archivedElsewhere();
    const inner = new MemoryEngine();
    const engine = withArchive(inner, archive);
    const { id: live } = await engine.create({ model: "sim", messages: [{ role: "user", content: "hi" }] });
    expect(await inner.head(live)).toEqual({ lastOffset: 1, terminal: false });
    expect(await engine.read(live, 1, 10)).toEqual([]); // the end of a live log, not a fall back
    // A copy that disagrees with the engine (it cannot, but if it did) is never what a reader sees.
    await archive.store(live, [{ ...(await archive.read(id, 0, 20)).at(-1)!, offset: 1 }]);
    expect(await engine.head(live)).toEqual({ lastOffset: 1, terminal: false });
    expect((await engine.read(live, 0, 10))[0]?.type).toBe("created");
    expect(await engine.cancel(live)).toBe("cancelled");
  });

  test("lists the engine's generations, then the archived ones it no longer holds, each once, page by page", async () => {
    const { id: gone, archive } = await archivedElsewhere();
    const inner = new MemoryEngine();
    const engine = withArchive(inner, archive);
    const live: string[] = [];
    for (let i = 0; i < 3; i++) live.push((await engine.create({ model: "sim", messages: [{ role: "user", content: `q${i}` }] })).id);
    // Archived and still held by the engine: listed once, as the engine's.
    const both = live[0] ?? "";
    await archive.store(both, [{ ...(await archive.read(gone, 0, 100)).at(-1)!, offset: 1 }]);
    const seen: string[] = [];
    let after: string | undefined;
    do {
      const page = await engine.generations(after, 2);
      expect(page.ids.length).toBeLessThanOrEqual(2);
      seen.push(...page.ids);
      after = page.next;
    } while (after !== undefined);
    expect([...seen].sort()).toEqual([...live, gone].sort());
    await expect(engine.generations("x:1", 2)).rejects.toThrow(RangeError);
  });
});
