import { beforeEach, describe, expect, test } from "vitest";
import type { Entry } from "../../../src/core/entries.ts";
import { MemoryArchive } from "../../../src/engine/archive/memory.ts";
import type { Archive } from "../../../src/engine/archive/port.ts";
import { openPostgresArchive } from "../../../src/engine/archive/postgres.ts";
import { SqliteArchive } from "../../../src/engine/archive/sqlite.ts";
import { MemoryEngine } from "../../../src/engine/memory/memory-engine.ts";
import { readLog } from "../../../src/engine/read-log.ts";
import { writeEventfulLog } from "../../support/eventful-log.ts";
import { requirePostgres } from "../../support/postgres-harness.ts";
import { storeAdapters } from "../../support/store-adapters.ts";

/**
 * One suite for every archive adapter (STYLE §2): a finished log goes in entry for entry and comes
 * back as the same bytes, storing twice is harmless, a log that has not ended is refused, and a
 * reader's position is kept.
 */

const ADAPTERS = storeAdapters<Archive>({
  label: "archive",
  memory: () => new MemoryArchive(),
  sqlite: (dir) => new SqliteArchive(dir),
  postgres: (url) => openPostgresArchive({ url }),
});

/** A finished log with everything an entry can carry: a tenant, metadata, retries, a rewind, odd text. */
async function finishedLog(text = 'héllo \u0000 \ud83d\ude00 \ud800 \u2028 "quoted" \\ end'): Promise<{ id: string; entries: Entry[] }> {
  const engine = new MemoryEngine();
  const { id } = await engine.create(
    { model: "sim", messages: [{ role: "user", content: text }], max_tokens: 7, temperature: 0.25, seed: 1e21, metadata: { "k é": "v\n" } },
    { tenant: "acme" },
  );
  const claim = await engine.claim("w", 60_000, new AbortController().signal);
  if (!claim) throw new Error("no claim");
  const f = claim.fence;
  await engine.append(id, f, 2, [
    { type: "started", attempt: f, worker: "w", model: "sim" },
    { type: "delta", attempt: f, text },
    { type: "retrying", attempt: f, error: { code: "model_timeout", message: "slow" }, delayMs: 0.5 },
    { type: "rewind", attempt: f, toOffset: 1 },
    { type: "delta", attempt: f, text: "again" },
    { type: "completed", attempt: f, finishReason: "stop", usage: { promptTokens: 3, completionTokens: 2 } },
  ]);
  const entries = await readLog(engine, id);
  await engine.close();
  return { id, entries };
}

const bytes = (entries: readonly Entry[]): string[] => entries.map((entry) => JSON.stringify(entry));

for (const adapter of ADAPTERS) {
  describe(`archive conformance: ${adapter.name}`, () => {
    let archive: Archive;
    let reopen: () => Promise<Archive>;
    const opened: Archive[] = [];

    beforeEach(async (ctx) => {
      if (adapter.needsPostgres) requirePostgres(ctx);
      ({ store: archive, reopen } = await adapter.open());
      opened.push(archive);
      return async () => {
        for (const a of opened.splice(0)) await a.close();
      };
    });

    test("a finished log reads back entry for entry, as the same bytes, from another handle too", async () => {
      const { id, entries } = await finishedLog();
      await archive.store(id, entries);
      expect(await archive.head(id)).toEqual({ lastOffset: entries.length, terminal: true });
      expect(bytes(await archive.read(id, 0, 1000))).toEqual(bytes(entries));
      const other = await reopen();
      if (other !== archive) opened.push(other);
      expect(bytes(await other.read(id, 0, 1000))).toEqual(bytes(entries));
    });

    test("an eventful log (retries, a fallback, a takeover, a rewind) reads back the same", async () => {
      const engine = new MemoryEngine();
      const { id } = await writeEventfulLog(engine);
      const entries = await readLog(engine, id);
      await archive.store(id, entries);
      expect(bytes(await archive.read(id, 0, 1000))).toEqual(bytes(entries));
    });

    test("reads page by offset and limit; a log that is not archived is undefined and empty", async () => {
      const { id, entries } = await finishedLog();
      await archive.store(id, entries);
      expect(bytes(await archive.read(id, 2, 3))).toEqual(bytes(entries.slice(2, 5)));
      expect(await archive.read(id, entries.length, 10)).toEqual([]);
      expect(await archive.head("gen_nothing")).toBeUndefined();
      expect(await archive.read("gen_nothing", 0, 10)).toEqual([]);
    });

    test("storing a log again, also at the same time from two handles, is harmless", async () => {
      const { id, entries } = await finishedLog();
      const other = await reopen();
      if (other !== archive) opened.push(other);
      await Promise.all([archive.store(id, entries), other.store(id, entries), archive.store(id, entries)]);
      await archive.store(id, entries);
      expect(await archive.head(id)).toEqual({ lastOffset: entries.length, terminal: true });
      expect(bytes(await archive.read(id, 0, 1000))).toEqual(bytes(entries));
    });

    test("a log that has not ended, or is not whole, is refused and nothing is kept", async () => {
      const { id, entries } = await finishedLog();
      await expect(archive.store(id, entries.slice(0, -1))).rejects.toThrow(RangeError);
      await expect(archive.store(id, entries.slice(1))).rejects.toThrow(/entry 1 has offset 2/);
      await expect(archive.store(id, [])).rejects.toThrow(RangeError);
      expect(await archive.head(id)).toBeUndefined();
    });

    test("lists the archived generations page by page, each once, in a stable order", async () => {
      const stored: string[] = [];
      for (let i = 0; i < 5; i++) {
        const { id, entries } = await finishedLog(`log ${i}`);
        await archive.store(id, entries);
        stored.push(id);
      }
      const seen: string[] = [];
      let after: string | undefined;
      let pages = 0;
      do {
        const page = await archive.generations(after, 2);
        expect(page.ids.length).toBeLessThanOrEqual(2);
        seen.push(...page.ids);
        after = page.next;
        pages++;
      } while (after !== undefined);
      expect(pages).toBe(3);
      expect(seen).toEqual([...stored].sort());
      expect(await archive.generations(undefined, 10)).toEqual({ ids: [...stored].sort() });
    });

    test("a reader's position is kept and replaced; each reader has its own", async () => {
      expect(await archive.position("archiver")).toBeUndefined();
      await archive.setPosition("archiver", "17-0");
      await archive.setPosition("archiver", "42-1");
      await archive.setPosition("other", "1");
      const other = await reopen();
      if (other !== archive) opened.push(other);
      expect(await other.position("archiver")).toBe("42-1");
      expect(await other.position("other")).toBe("1");
      await archive.ping();
    });
  });
}
