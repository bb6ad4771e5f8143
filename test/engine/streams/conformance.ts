import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { revisionOf, type StreamRecord, type StreamStore } from "../../../src/engine/streams/port.ts";
import { Streams } from "../../../src/engine/streams/streams.ts";

/** A fresh store per test, and a second client of the same storage (another process's view). */
export interface StreamStoreHarness {
  readonly store: StreamStore;
  /** Another client of the same store; the same object when the store lives in memory. */
  readonly peer: StreamStore;
  close(): Promise<void>;
}

let names = 0;
const uniqueName = (): string => `conf/${process.pid}-${Date.now()}-${names++}`;

function record(overrides: Partial<StreamRecord> = {}): StreamRecord {
  return {
    incarnation: "i1",
    version: 1,
    contentType: "application/octet-stream",
    createdAt: 1_000,
    tail: 0,
    closed: false,
    producers: {},
    refCount: 0,
    softDeleted: false,
    ...overrides,
  };
}

const chunk = (position: number, text: string): { position: number; data: Buffer } => ({ position, data: Buffer.from(text) });

/** The contract of `src/engine/streams/port.ts`, run against every adapter. */
export function streamStoreConformance(name: string, open: () => Promise<StreamStoreHarness>): void {
  describe(`stream store conformance: ${name}`, () => {
    let h: StreamStoreHarness;
    beforeEach(async () => {
      h = await open();
    });
    afterEach(async () => {
      await h.close();
    });

    it("creates a stream only where none stands, and loads it from either client", async () => {
      const n = uniqueName();
      expect(await h.store.load(n)).toBeUndefined();
      const first = record({ tail: 1 });
      expect(await h.store.commit(n, undefined, { record: first, chunks: [chunk(1, "a")] })).toBe("committed");
      expect(await h.peer.commit(n, undefined, { record: record({ incarnation: "i2" }), chunks: [] })).toBe("conflict");
      const loaded = await h.peer.load(n);
      expect(loaded).toMatchObject({ revision: revisionOf(first), record: first, touchedAt: first.createdAt });
    });

    it("commits against the revision it read, all or nothing: a stale one writes no record and no chunk", async () => {
      const n = uniqueName();
      const v1 = record();
      await h.store.commit(n, undefined, { record: v1, chunks: [] });
      const v2 = { ...v1, version: 2, tail: 1 };
      expect(await h.store.commit(n, revisionOf(v1), { record: v2, chunks: [chunk(1, "one")] })).toBe("committed");
      const lost = { ...v1, version: 2, tail: 1, closed: true };
      expect(await h.peer.commit(n, revisionOf(v1), { record: lost, chunks: [chunk(2, "two")] })).toBe("conflict");
      expect((await h.peer.load(n))?.record).toEqual(v2);
      expect((await h.peer.read(n, 0, 1 << 20)).map((c) => c.data.toString())).toEqual(["one"]);
    });

    it("reads chunks after a position in order, byte for byte, at least one and then what fits the limit", async () => {
      const n = uniqueName();
      const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await h.store.commit(n, undefined, {
        record: record({ tail: 4 }),
        chunks: [chunk(1, "aaaa"), { position: 2, data: every }, chunk(3, "cc"), chunk(4, "d")],
      });
      const all = await h.peer.read(n, 0, 1 << 20);
      expect(all.map((c) => c.position)).toEqual([1, 2, 3, 4]);
      expect(all[1]?.data.equals(every)).toBe(true);
      expect((await h.peer.read(n, 2, 1 << 20)).map((c) => c.data.toString())).toEqual(["cc", "d"]);
      expect((await h.peer.read(n, 0, 1)).map((c) => c.position)).toEqual([1]);
      expect((await h.peer.read(n, 2, 3)).map((c) => c.position)).toEqual([3, 4]);
      expect(await h.peer.read(n, 4, 1 << 20)).toEqual([]);
    });

    it("deletes a stream with its chunks, and a stream made again under the name starts empty", async () => {
      const n = uniqueName();
      const v1 = record({ tail: 1 });
      await h.store.commit(n, undefined, { record: v1, chunks: [chunk(1, "old")] });
      expect(await h.store.commit(n, revisionOf(v1), { record: null, chunks: [] })).toBe("committed");
      expect(await h.peer.load(n)).toBeUndefined();
      expect(await h.peer.read(n, 0, 1 << 20)).toEqual([]);
      await h.peer.commit(n, undefined, { record: record({ incarnation: "i2" }), chunks: [] });
      expect(await h.store.read(n, 0, 1 << 20)).toEqual([]);
      // An expired stream's name taken again: its chunks replaced in the same commit.
      const v2 = record({ incarnation: "i2" });
      const v3 = record({ incarnation: "i3", tail: 1, createdAt: 5_000 });
      await h.store.commit(n, revisionOf(v2), { record: { ...v2, version: 2, tail: 1 }, chunks: [chunk(1, "stale")] });
      await h.store.commit(n, revisionOf({ ...v2, version: 2 }), { record: v3, chunks: [chunk(1, "new")], replaceChunks: true });
      expect((await h.peer.read(n, 0, 1 << 20)).map((c) => c.data.toString())).toEqual(["new"]);
      expect((await h.peer.load(n))?.touchedAt).toBe(5_000);
    });

    it("records a touch without a new revision, never moving it back", async () => {
      const n = uniqueName();
      const v1 = record();
      await h.store.commit(n, undefined, { record: v1, chunks: [] });
      await h.peer.touch(n, 9_000);
      await h.store.touch(n, 8_000);
      expect(await h.store.load(n)).toMatchObject({ revision: revisionOf(v1), touchedAt: 9_000 });
      await h.store.touch(uniqueName(), 9_000); // a stream that does not exist: nothing happens
    });

    it("wakes a waiter when another client commits, at once when the revision already moved, and on abort", async () => {
      const n = uniqueName();
      const v1 = record();
      await h.store.commit(n, undefined, { record: v1, chunks: [] });
      const ctl = new AbortController();
      let woken = false;
      // A wait may resolve early (a recovery of the subscriber wakes every waiter): a caller looks
      // again, as here, and only a change of the revision ends the loop.
      const waiting = (async () => {
        do await h.store.wait(n, revisionOf(v1), ctl.signal);
        while ((await h.store.load(n))?.revision === revisionOf(v1));
        woken = true;
      })();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(woken).toBe(false);
      await h.peer.commit(n, revisionOf(v1), { record: { ...v1, version: 2, tail: 1 }, chunks: [chunk(1, "x")] });
      await waiting;
      expect(ctl.signal.aborted).toBe(false);
      await h.store.wait(n, revisionOf(v1), new AbortController().signal); // already moved: returns
      const aborted = new AbortController();
      const pending = h.store.wait(n, revisionOf({ ...v1, version: 2 }), aborted.signal);
      aborted.abort();
      await pending;
    });

    it("serializes concurrent appends from both clients: each lands once, at positions 1, 2, 3 …", async () => {
      const n = uniqueName();
      const a = new Streams(h.store);
      const b = new Streams(h.peer);
      expect((await a.create(n, { contentType: "text/plain", closed: false, data: undefined })).kind).toBe("created");
      const writes = Array.from({ length: 24 }, (_, i) =>
        (i % 2 === 0 ? a : b).append(n, {
          contentType: "text/plain",
          data: Buffer.from(`<${i}>`),
          close: false,
          producer: { id: `p${i % 3}`, epoch: 0, seq: Math.floor(i / 3) },
        }),
      );
      const outcomes = await Promise.all(writes);
      // Producer sequences may arrive out of order: a gap is refused, the rest land exactly once.
      const landed = outcomes.filter((o) => o.kind === "appended").length;
      const chunks = await a.read(n, 0, 1 << 20);
      expect(chunks.map((c) => c.position)).toEqual(Array.from({ length: landed }, (_, i) => i + 1));
      expect(new Set(chunks.map((c) => c.data.toString())).size).toBe(landed);
      const plain = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          (i % 2 ? a : b).append(n, { contentType: "text/plain", data: Buffer.from(`[${i}]`), close: false }),
        ),
      );
      expect(plain.every((o) => o.kind === "appended")).toBe(true);
      const after = await b.read(n, landed, 1 << 20);
      expect(after.map((c) => c.data.toString()).sort()).toEqual(Array.from({ length: 16 }, (_, i) => `[${i}]`).sort());
    });
  });
}
