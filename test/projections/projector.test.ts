import { describe, expect, it } from "vitest";
import type { GenerationRequest } from "../../src/core/entries.ts";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import { readLog } from "../../src/engine/read-log.ts";
import { PROJECTOR_READER, Projector } from "../../src/gateway/read-models/projector.ts";
import { rebuildReadModels } from "../../src/gateway/read-models/rebuild.ts";
import { MemoryReadModelStore } from "../../src/projections/store/memory.ts";
import { projectGeneration } from "../../src/projections/summary.ts";
import { overriding } from "../support/overriding-engine.ts";
import { never, until } from "../support/waits.ts";

const request = (content: string): GenerationRequest => ({ model: "sim", messages: [{ role: "user", content }] });

/** Runs one answer to its end on `engine` as a worker would: claim, started, a delta, completed. */
async function answer(engine: MemoryEngine, content: string): Promise<string> {
  const { id } = await engine.create(request(content));
  const claim = await engine.claim("w", 60_000, never);
  if (claim?.id !== id) throw new Error("claimed another job");
  const f = claim.fence;
  await engine.append(id, f, 2, [
    { type: "started", attempt: f, worker: "w", model: "sim" },
    { type: "delta", attempt: f, text: content },
    { type: "completed", attempt: f, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 1 } },
  ]);
  return id;
}

/** What the store should hold: every log of `ids` folded whole. */
async function expected(engine: MemoryEngine, ids: readonly string[]) {
  const rows = await Promise.all(ids.map(async (id) => projectGeneration(id, await readLog(engine, id))));
  return rows.sort((a, b) => (a.summary.id < b.summary.id ? -1 : 1));
}

/** `count` finished answers of 300 deltas each: folds long enough that many of them fill a slice. */
async function longAnswers(engine: MemoryEngine, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const { id } = await engine.create(request(`long ${i}`));
    const claim = await engine.claim("w", 60_000, never);
    const f = claim!.fence;
    const deltas = Array.from({ length: 300 }, (_, k) => ({ type: "delta" as const, attempt: f, text: `${k} ` }));
    await engine.append(id, f, 2, [{ type: "started", attempt: f, worker: "w", model: "sim" }, ...deltas]);
    await engine.append(id, f, 303, [
      { type: "completed", attempt: f, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 300 } },
    ]);
    ids.push(id);
  }
  return ids;
}

/**
 * Runs `work` while counting the turns of the event loop: `busy(op)` makes `op` take `cpuMs` of CPU
 * that never waits for I/O, as sqlite's reads do, and counts it in the turn it ran in. Returns
 * what `work` returned and the calls of each turn that had any.
 */
async function perTurn<T>(
  cpuMs: number,
  work: (busy: <R>(op: () => Promise<R>) => Promise<R>) => Promise<T>,
): Promise<{ result: T; calls: number[] }> {
  let turn = 0;
  const calls = new Map<number, number>();
  const busy = <R>(op: () => Promise<R>): Promise<R> => {
    const end = performance.now() + cpuMs;
    while (performance.now() < end);
    calls.set(turn, (calls.get(turn) ?? 0) + 1);
    return op();
  };
  let ticking = true;
  const counting = (async () => {
    while (ticking) {
      await new Promise((resolve) => setImmediate(resolve));
      turn += 1;
    }
  })();
  try {
    return { result: await work(busy), calls: [...calls.values()] };
  } finally {
    ticking = false;
    await counting;
  }
}

describe("the projector", () => {
  it("a projector stopped part way through a page keeps its position before it, and the next one folds the rest", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    const ids = await longAnswers(engine, 300);
    const options = { engine, store, stuckAfterMs: 60_000, pageSize: 10_000 };
    const first = new Projector(options);
    first.start();
    await until(async () => (await store.all()).length > 0, 30_000, "the first folds");
    await first.stop();
    expect((await store.all()).length).toBeLessThan(ids.length); // stopped part way through its one page
    const second = new Projector(options);
    second.start();
    await until(async () => (await store.all()).length === ids.length, 30_000, "every log folded after the restart");
    await second.stop();
    expect(await store.all()).toEqual(await expected(engine, ids));
  });

  it("stores the folds of a step in one apply: a commit per fifty logs, not one per log", async () => {
    const engine = new MemoryEngine();
    const memory = new MemoryReadModelStore();
    const applies: number[] = [];
    const store = overriding(memory, {
      apply: (folds) => {
        applies.push(folds.length);
        return memory.apply(folds);
      },
    });
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) ids.push(await answer(engine, `batched ${i}`));
    expect(await new Projector({ engine, store, stuckAfterMs: 60_000 }).projectAll()).toBe(120);
    expect(applies).toEqual([50, 50, 20]);
    expect(await memory.all()).toEqual(await expected(engine, ids));
  });

  it("once caught up, the next page gathers what comes in meanwhile: each log folded once for its records, one position per page", async () => {
    const engine = new MemoryEngine();
    const memory = new MemoryReadModelStore();
    const applies: number[] = [];
    let positions = 0;
    const store = overriding(memory, {
      apply: (folds) => {
        applies.push(folds.length);
        return memory.apply(folds);
      },
      setPosition: (reader, position) => {
        positions += 1;
        return memory.setPosition(reader, position);
      },
    });
    // The first page is read at once; the feed is then read to its end, and the next page gathers.
    const first = await answer(engine, "the first");
    const projector = new Projector({ engine, store, stuckAfterMs: 60_000, gatherMs: 60_000 });
    projector.start();
    try {
      await until(async () => positions === 1, 30_000, "the first page folded");
      expect(await memory.all()).toEqual(await expected(engine, [first]));
      // Forty answers, each written as three feed records (created, the claim's started, completed),
      // while the projector gathers: none is folded before the gathering is over.
      const ids = [first];
      for (let i = 0; i < 40; i++) ids.push(await answer(engine, `gathered ${i}`));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect((await memory.all()).length).toBe(1);
      expect(positions).toBe(1);
      await projector.stop();
      // A new projector reads on from the position: one page of all forty, each log folded once.
      applies.length = 0;
      const next = new Projector({ engine, store, stuckAfterMs: 60_000, gatherMs: 60_000 });
      next.start();
      await until(async () => (await memory.all()).length === 41, 30_000, "the forty gathered rows");
      await next.stop();
      expect(applies).toEqual([40]);
      expect(positions).toBe(2);
      expect(await memory.all()).toEqual(await expected(engine, ids));
    } finally {
      await projector.stop();
      await engine.close();
    }
  });

  it("folding many long logs lets the event loop turn between reads and folds once a slice is spent, and folds them all", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    const ids = await longAnswers(engine, 150);
    // An engine whose reads each take a millisecond of CPU.
    const { result: projected, calls } = await perTurn(1, (busy) =>
      new Projector({
        engine: overriding(engine, { read: (...args) => busy(() => engine.read(...args)) }),
        store,
        stuckAfterMs: 60_000,
      }).projectAll(),
    );
    expect(projected).toBe(150);
    // The logs of a step are read at once; without a turn now and then, a step's 50 reads were one
    // turn. A 10 ms slice holds about ten of them.
    expect(calls.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(150);
    expect(Math.max(...calls)).toBeLessThanOrEqual(25);
    expect(await store.all()).toEqual(await expected(engine, ids));
  });

  it("looking at many live answers lets the event loop turn between slices of reads and between folds", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    // 200 answers folded while queued, then claimed and streaming: the first look sweeps the queued
    // ones, reads each, and folds each (its next entry is its `started`).
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push((await engine.create(request(`live ${i}`))).id);
    const projector = new Projector({ engine, store, stuckAfterMs: 20_000, liveEveryMs: 2_000 });
    for (const id of ids) await projector.project(id);
    for (let i = 0; i < ids.length; i++) {
      const claim = await engine.claim("w", 60_000, never);
      const f = claim!.fence;
      const deltas = Array.from({ length: 100 }, (_, k) => ({ type: "delta" as const, attempt: f, text: `${k} ` }));
      await engine.append(claim!.id, f, 2, [{ type: "started", attempt: f, worker: "w", model: "sim" }, ...deltas]);
    }
    // An engine whose reads each take a tenth of a millisecond of CPU.
    const { result: stuck, calls } = await perTurn(0.1, (busy) =>
      new Projector({
        engine: overriding(engine, { head: (id) => busy(() => engine.head(id)), read: (...args) => busy(() => engine.read(...args)) }),
        store,
        stuckAfterMs: 20_000,
        liveEveryMs: 2_000,
      }).lookAtLive(Date.now() + 17_000),
    );
    expect(stuck).toBe(0);
    expect((await store.live()).map((row) => row.summary)).toEqual(
      ids.map(() => expect.objectContaining({ status: "running", lastOffset: 102 })),
    );
    // 600 calls or more (a head and a read per answer, then a fold's reads): in one step before; a
    // 10 ms slice holds about a hundred of them, and a step of reads at most as many again.
    expect(calls.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(600);
    expect(Math.max(...calls)).toBeLessThanOrEqual(250);
    await engine.close();
  });

  it("follows the feed to every log's end, resumes from its position after a restart, and a rebuild gives the same rows", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    const ids = [await answer(engine, "one"), await answer(engine, "two")];
    const first = new Projector({ engine, store, stuckAfterMs: 60_000 });
    first.start();
    await until(async () => (await store.all()).length === 2 && (await store.position(PROJECTOR_READER)) !== undefined, 30_000, "two rows");
    await first.stop();
    const stoppedAt = await store.position(PROJECTOR_READER);

    // Answers while no projector runs are applied by the next one, from the position kept.
    ids.push(await answer(engine, "three"));
    const second = new Projector({ engine, store, stuckAfterMs: 60_000 });
    second.start();
    await until(async () => (await store.all()).length === 3, 30_000, "the third row after the restart");
    await until(async () => (await store.position(PROJECTOR_READER)) !== stoppedAt, 30_000, "the position moved on");
    await second.stop();
    expect(await store.all()).toEqual(await expected(engine, ids));

    // Applying every log again changes nothing.
    const again = new Projector({ engine, store, stuckAfterMs: 60_000 });
    expect(await again.projectAll()).toBe(0);
    const live = await store.all();
    const position = await store.position(PROJECTOR_READER);
    expect(await rebuildReadModels(engine, store)).toEqual({ generations: 3, position });
    expect(await store.all()).toEqual(live);
    expect(await store.position(PROJECTOR_READER)).toBe(position);
    await engine.close();
  });

  it("folds every log again when the feed dropped records it had not read", async () => {
    const engine = new MemoryEngine({ feedLimit: 2 });
    const store = new MemoryReadModelStore();
    // Six records (three per answer) written before any projector: the first four are gone.
    const ids = [await answer(engine, "early"), await answer(engine, "late")];
    expect((await engine.changes(undefined, 10)).gap).toBe(true);
    const projector = new Projector({ engine, store, stuckAfterMs: 60_000 });
    projector.start();
    await until(async () => (await store.all()).length === 2, 30_000, "both rows, the early one from the refold");
    await projector.stop();
    expect(await store.all()).toEqual(await expected(engine, ids));
    await engine.close();
  });

  it("two projectors on one store at once store the same rows as one would", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    const projectors = [0, 1].map(() => new Projector({ engine, store, stuckAfterMs: 60_000, liveEveryMs: 10 }));
    for (const p of projectors) p.start();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await answer(engine, `concurrent ${i}`));
    const want = await expected(engine, ids);
    await until(async () => JSON.stringify(await store.all()) === JSON.stringify(want), 30_000, "every row at its log's end");
    await Promise.all(projectors.map((p) => p.stop()));
    expect(await store.all()).toEqual(want);
    await engine.close();
  });

  it("a log found shorter than what was applied (a failover lost entries) replaces its row", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    const id = await answer(engine, "lost its end");
    // The log as a replica that lagged would hold it after a failover: the last two entries gone.
    let keep = Infinity;
    const lossy = overriding(engine, {
      head: async (gid) => {
        const head = await engine.head(gid);
        return head && { lastOffset: Math.min(head.lastOffset, keep), terminal: head.terminal && head.lastOffset <= keep };
      },
      read: async (gid, after, limit) => (await engine.read(gid, after, limit)).filter((e) => e.offset <= keep),
    });
    const projector = new Projector({ engine: lossy, store, stuckAfterMs: 60_000 });
    expect(await projector.project(id)).toBe(true);
    expect((await store.all())[0]?.summary).toMatchObject({ status: "completed", lastOffset: 4 });
    keep = 2;
    expect(await projector.project(id)).toBe(true);
    expect((await store.all())[0]?.summary).toMatchObject({ status: "running", lastOffset: 2 });
    expect(await store.live()).toHaveLength(1);
    await engine.close();
  });

  it("notes a live answer's tokens without folding its log again, and counts it stuck only once they stop", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    const { id } = await engine.create(request("streaming"));
    const claim = await engine.claim("w", 60_000, never);
    const f = claim!.fence;
    await engine.append(id, f, 2, [{ type: "started", attempt: f, worker: "w", model: "sim" }]);
    const projector = new Projector({ engine, store, stuckAfterMs: 1_000 });
    await projector.project(id);
    const [row] = await store.live();
    const startedAt = Date.parse(row!.lastEntryAt);
    // Long after the start, and no token: stuck.
    expect(await projector.lookAtLive(startedAt + 5_000)).toBe(1);
    await engine.append(id, f, 3, [{ type: "delta", attempt: f, text: "a" }]);
    const [delta] = await engine.read(id, 2, 1);
    // A token since: not stuck at its time, the row not folded again, its time known to the projector.
    expect(await projector.lookAtLive(Date.parse(delta!.at) + 500)).toBe(0);
    expect((await store.live())[0]!.summary.lastOffset).toBe(2);
    expect(projector.lastEntryAt(id, row!.lastEntryAt)).toBe(delta!.at);
    // Tokens stop: stuck again once the threshold has passed since the last one.
    expect(await projector.lookAtLive(Date.parse(delta!.at) + 5_000)).toBe(1);
    await engine.close();
  });

  it("reads only the running answers that may be stuck: not those with a recent entry, nor those queued", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    const heads: string[] = [];
    const counted = overriding(engine, {
      head: (gid) => {
        heads.push(gid);
        return engine.head(gid);
      },
    });
    const running = await engine.create(request("running"));
    const claim = await engine.claim("w", 60_000, never);
    await engine.append(running.id, claim!.fence, 2, [{ type: "started", attempt: claim!.fence, worker: "w", model: "sim" }]);
    const queued = await engine.create(request("waiting for a worker"));
    const projector = new Projector({ engine: counted, store, stuckAfterMs: 20_000, liveEveryMs: 2_000 });
    await projector.project(running.id);
    await projector.project(queued.id);
    const since = Math.max(...(await store.live()).map((row) => Date.parse(row.lastEntryAt)));
    heads.length = 0;
    // 10 s after their last entries: 6 s more than two looks before either could be stuck, so neither is read.
    expect(await projector.lookAtLive(since + 10_000)).toBe(0);
    expect(heads).toEqual([]);
    // 17 s: the running one may be stuck by the look after next, so it is read (and not stuck yet);
    // the queued one changes only by records of the feed, so it is not.
    expect(await projector.lookAtLive(since + 17_000)).toBe(0);
    expect(heads).toEqual([running.id]);
    // 21 s with no entry since: both stuck.
    expect(await projector.lookAtLive(since + 21_000)).toBe(2);
    expect(heads).toEqual([running.id, running.id]);
    await engine.close();
  });

  it("a queued answer whose claim's record was missed (a gap, a restart) is folded by the sweep of queued answers", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    const { id } = await engine.create(request("claimed while nobody looked"));
    const projector = new Projector({ engine, store, stuckAfterMs: 20_000, liveEveryMs: 2_000 });
    await projector.project(id); // its created record only
    const claim = await engine.claim("w", 60_000, never);
    await engine.append(id, claim!.fence, 2, [{ type: "started", attempt: claim!.fence, worker: "w", model: "sim" }]);
    const [row] = await store.live();
    // The first look sweeps the queued answers that could be stuck: this one is folded, and streams.
    expect(await projector.lookAtLive(Date.parse(row!.lastEntryAt) + 17_000)).toBe(0);
    expect((await store.live())[0]!.summary).toMatchObject({ status: "running", attempts: 1, worker: "w" });
    await engine.close();
  });

  it("folds a live answer whose next entry is its started, written after the claim's record was folded", async () => {
    const engine = new MemoryEngine();
    const store = new MemoryReadModelStore();
    const { id } = await engine.create(request("claimed, then started"));
    const claim = await engine.claim("w", 60_000, never);
    const projector = new Projector({ engine, store, stuckAfterMs: 60_000 });
    await projector.project(id, "started"); // what the feed's claim record brings: the log holds `created` only
    expect((await store.live())[0]!.summary).toMatchObject({ status: "queued", attempts: 0 });
    const f = claim!.fence;
    await engine.append(id, f, 2, [
      { type: "started", attempt: f, worker: "w", model: "sim" },
      { type: "delta", attempt: f, text: "a" },
    ]);
    await projector.lookAtLive();
    expect((await store.live())[0]!.summary).toMatchObject({ status: "running", attempts: 1, worker: "w" });
    await engine.close();
  });
});
