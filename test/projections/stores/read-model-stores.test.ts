import { beforeEach, describe, expect, test } from "vitest";
import type { Entry } from "../../../src/core/entries.ts";
import { MemoryEngine } from "../../../src/engine/memory/memory-engine.ts";
import { readLog } from "../../../src/engine/read-log.ts";
import { openPostgresReadModels } from "../../../src/gateway/read-models/postgres-store.ts";
import { SqliteReadModelStore } from "../../../src/gateway/read-models/sqlite-store.ts";
import { countModels, countWorkers } from "../../../src/projections/store/counts.ts";
import { MemoryReadModelStore } from "../../../src/projections/store/memory.ts";
import type { ReadModelStore } from "../../../src/projections/store/port.ts";
import { projectGeneration, type ProjectedGeneration } from "../../../src/projections/summary.ts";
import { requirePostgres } from "../../support/postgres-harness.ts";
import { storeAdapters } from "../../support/store-adapters.ts";
import { never } from "../../support/waits.ts";

/**
 * One suite for every read-model store (decision 037): a row moves only forward (applying the
 * same fold or an older one changes nothing), the counts are the sums of the rows, the search
 * pages newest first, and positions are kept, on memory, sqlite and PostgreSQL alike.
 */

const ADAPTERS = storeAdapters<ReadModelStore>({
  label: "read-models",
  memory: () => new MemoryReadModelStore(),
  sqlite: (dir) => new SqliteReadModelStore(dir),
  postgres: (url) => openPostgresReadModels({ url }),
});

/** Logs of every shape, written through a real (memory) engine: completed, failed, cancelled, taken over, retried, running. */
async function logs(): Promise<Map<string, Entry[]>> {
  const engine = new MemoryEngine();
  const out = new Map<string, Entry[]>();
  const request = (content: string, model = "sim") => ({ model, messages: [{ role: "user" as const, content }] });
  const run = async (content: string, model: string, write: (id: string, f: number, takeover: () => Promise<number>) => Promise<void>) => {
    const { id } = await engine.create(request(content, model), { tenant: "acme" });
    const claim = await engine.claim("w1", 20, never);
    if (claim?.id !== id) throw new Error("claimed another job");
    await write(id, claim.fence, async () => {
      const next = await engine.claim("w2", 60_000, never);
      if (next?.id !== id) throw new Error("no takeover");
      return next.fence;
    });
    out.set(id, await readLog(engine, id));
  };
  await run("completed", "sim", async (id, f) => {
    await engine.append(id, f, 2, [
      { type: "started", attempt: f, worker: "w1", model: "sim" },
      { type: "delta", attempt: f, text: "hi" },
      { type: "completed", attempt: f, finishReason: "stop", usage: { promptTokens: 2, completionTokens: 1 } },
    ]);
  });
  await run("failed", "sim", async (id, f) => {
    await engine.append(id, f, 2, [
      { type: "started", attempt: f, worker: "w1", model: "sim" },
      {
        type: "retrying",
        attempt: f,
        error: { code: "model_unavailable", message: "every provider of sim is failing (circuit open)" },
        delayMs: 0,
      },
      { type: "started", attempt: f, worker: "w1", model: "sim-b" },
      { type: "failed", attempt: f, error: { code: "model_timeout", message: "slow" } },
    ]);
  });
  await run("taken over", "other", async (id, f, takeover) => {
    await engine.append(id, f, 2, [{ type: "started", attempt: f, worker: "w1", model: "other" }]);
    const g = await takeover();
    await engine.append(id, g, 3, [
      { type: "started", attempt: g, worker: "w2", model: "other" },
      { type: "delta", attempt: g, text: "x" },
      { type: "completed", attempt: g, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 1 } },
    ]);
  });
  await run("cancelled", "sim", async (id) => {
    await engine.cancel(id);
  });
  await run("running", "sim", async (id, f) => {
    await engine.append(id, f, 2, [{ type: "started", attempt: f, worker: "w1", model: "sim" }]);
  });
  await engine.close();
  return out;
}

for (const adapter of ADAPTERS) {
  describe(`read-model store: ${adapter.name}`, () => {
    let store: ReadModelStore;
    let reopen: () => Promise<ReadModelStore>;
    const opened: ReadModelStore[] = [];
    let all: Map<string, Entry[]>;

    beforeEach(async (ctx) => {
      if (adapter.needsPostgres) requirePostgres(ctx);
      ({ store, reopen } = await adapter.open());
      opened.push(store);
      all = await logs();
      return async () => {
        for (const s of opened.splice(0)) await s.close();
      };
    });

    const folds = (): ProjectedGeneration[] => [...all].map(([id, entries]) => projectGeneration(id, entries));
    /** Applies one fold alone; whether it stored. */
    const applyOne = async (generation: ProjectedGeneration, replace?: boolean): Promise<boolean | undefined> =>
      (await store.apply([{ generation, ...(replace === undefined ? {} : { replace }) }]))[0];

    test("keeps each fold as it was given, and counts per model, per failure and per worker as sums of the rows", async () => {
      expect(await store.apply(folds().map((generation) => ({ generation })))).toEqual(folds().map(() => true));
      const byId = (rows: ProjectedGeneration[]) => [...rows].sort((a, b) => (a.summary.id < b.summary.id ? -1 : 1));
      expect(await store.all()).toEqual(byId(folds()));
      expect(await store.models()).toEqual(countModels(folds()));
      expect(await store.workers()).toEqual(countWorkers(folds()));
      const models = await store.models();
      expect(models.find((m) => m.model === "sim" && m.provider === "sim-b")).toMatchObject({
        answers: 1,
        failed: 1,
        retries: 1,
        breakerOpens: 1,
        failuresByCode: { model_timeout: 1 },
      });
      expect((await store.workers()).find((w) => w.worker === "w2")).toMatchObject({ attempts: 1, takeovers: 1, finished: 1 });
      expect(await store.failuresSince("2000-01-01T00:00:00.000Z")).toEqual([{ code: "model_timeout", count: 1 }]);
      expect(await store.failuresSince("2999-01-01T00:00:00.000Z")).toEqual([]);
      const [running] = await store.live();
      expect(running?.summary.status).toBe("running");
      // Narrowed: by the time of the newest entry, by id, both (either matches), or neither.
      const after = new Date(Date.parse(running!.lastEntryAt) + 1).toISOString();
      expect((await store.live({ lastEntryBefore: after })).map((l) => l.summary.id)).toEqual([running!.summary.id]);
      expect(await store.live({ lastEntryBefore: running!.lastEntryAt })).toEqual([]);
      expect((await store.live({ ids: [running!.summary.id, "gen_none"] })).map((l) => l.summary.id)).toEqual([running!.summary.id]);
      expect(await store.live({ lastEntryBefore: running!.lastEntryAt, ids: [running!.summary.id] })).toEqual([running]);
      expect(await store.live({ ids: [] })).toEqual([]);
      expect(await store.live({})).toEqual(await store.live()); // nothing asked: every live row
      // Thousands of ids in one query (sqlite bounds an expression's depth at 1,000).
      const many = [...Array.from({ length: 2_000 }, (_, i) => `gen_${i}`), running!.summary.id];
      expect((await store.live({ ids: many })).map((l) => l.summary.id)).toEqual([running!.summary.id]);
      const other = await reopen();
      if (other !== store) opened.push(other);
      expect(await other.all()).toEqual(await store.all());
    });

    test("a row only moves forward: the same fold, or a fold of less of the log, changes nothing", async () => {
      const [id, entries] = [...all].find(([, e]) => e.at(-1)?.type === "completed")!;
      expect(await applyOne(projectGeneration(id, entries.slice(0, 2)))).toBe(true);
      expect(await store.appliedOffset(id)).toBe(2);
      expect(await applyOne(projectGeneration(id, entries))).toBe(true);
      expect(await applyOne(projectGeneration(id, entries))).toBe(false);
      expect(await applyOne(projectGeneration(id, entries.slice(0, 3)))).toBe(false);
      expect(await store.all()).toEqual([projectGeneration(id, entries)]);
      expect(await store.appliedOffset(id)).toBe(entries.length);
      expect(await store.appliedOffset("gen_00000000000000000000000000")).toBe(0);
    });

    test("a replacing apply stores a fold of less of the log (the log lost entries), and changes the counts with it", async () => {
      const [id, entries] = [...all].find(([, e]) => e.at(-1)?.type === "completed")!;
      await applyOne(projectGeneration(id, entries));
      const shorter = projectGeneration(id, entries.slice(0, 2));
      expect(await applyOne(shorter)).toBe(false);
      expect(await applyOne(shorter, true)).toBe(true);
      expect(await store.all()).toEqual([shorter]);
      expect(await store.models()).toEqual(countModels([shorter]));
      expect(await store.workers()).toEqual(countWorkers([shorter]));
    });

    test("one apply of many folds stores each as it would alone, and says which it stored in their order", async () => {
      const [id, entries] = [...all].find(([, e]) => e.at(-1)?.type === "completed")!;
      const whole = projectGeneration(id, entries);
      const older = projectGeneration(id, entries.slice(0, 2));
      // The others, in the reverse order of their ids; the completed one is stored already.
      const others = folds()
        .filter((g) => g.summary.id !== id)
        .sort((a, b) => (a.summary.id < b.summary.id ? 1 : -1));
      await applyOne(whole);
      const given = [others[0]!, older, ...others.slice(1)].map((generation) => ({ generation }));
      expect(await store.apply(given)).toEqual([true, false, ...others.slice(1).map(() => true)]);
      expect(await store.apply([])).toEqual([]);
      const byId = (rows: ProjectedGeneration[]) => [...rows].sort((a, b) => (a.summary.id < b.summary.id ? -1 : 1));
      expect(await store.all()).toEqual(byId([whole, ...others]));
      // A fold of less of the log, then the same replacing: the first is refused, the second stored.
      expect(await store.apply([{ generation: older }, { generation: older, replace: true }])).toEqual([false, true]);
      expect(await store.all()).toEqual(byId([older, ...others]));
    });

    test("searches newest first by status, model and time, page by page", async () => {
      await store.apply(folds().map((generation) => ({ generation })));
      const newest = folds()
        .map((g) => g.summary)
        .sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1));
      const seen: string[] = [];
      let before: { createdAt: string; id: string } | undefined;
      for (;;) {
        const page = await store.search({ limit: 2, ...(before ? { before } : {}) });
        seen.push(...page.generations.map((s) => s.id));
        const last = page.generations.at(-1);
        if (!page.more || !last) break;
        before = { createdAt: last.createdAt, id: last.id };
      }
      expect(seen).toEqual(newest.map((s) => s.id));
      expect((await store.search({ limit: 10, status: "cancelled" })).generations.map((s) => s.status)).toEqual(["cancelled"]);
      expect((await store.search({ limit: 10, model: "other" })).generations).toHaveLength(1);
      expect((await store.search({ limit: 10, id: newest[0]!.id })).generations.map((s) => s.id)).toEqual([newest[0]!.id]);
      expect((await store.search({ limit: 10, since: "2999-01-01T00:00:00.000Z" })).generations).toEqual([]);
      expect((await store.search({ limit: 10, until: "2000-01-01T00:00:00.000Z" })).generations).toEqual([]);
    });

    test("keeps the feed position per reader, and clear drops rows and positions", async () => {
      expect(await store.position("projector")).toBeUndefined();
      await store.setPosition("projector", "17");
      await store.setPosition("projector", "1732-0");
      expect(await store.position("projector")).toBe("1732-0");
      await store.apply(folds().map((generation) => ({ generation })));
      await store.clear();
      expect(await store.all()).toEqual([]);
      expect(await store.models()).toEqual([]);
      expect(await store.workers()).toEqual([]);
      expect(await store.position("projector")).toBeUndefined();
    });
  });
}
