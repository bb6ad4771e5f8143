import { describe, expect, it } from "vitest";
import type { GenerationRequest } from "../../src/core/entries.ts";
import type { Change, Engine } from "../../src/engine/port.ts";
import { never } from "../support/waits.ts";

/** The engine of a test and another connection to the same store. */
interface Connections {
  readonly engine: Engine;
  readonly peer: Engine;
}

const request: GenerationRequest = { model: "sim", messages: [{ role: "user", content: "feed" }] };

/** Every record after `after`, read in pages of `pageSize`. */
async function allChanges(engine: Engine, after?: string, pageSize = 3): Promise<Change[]> {
  const all: Change[] = [];
  for (let position = after; ;) {
    const page = await engine.changes(position, pageSize);
    expect(page.gap).toBe(false);
    all.push(...page.changes);
    if (page.changes.length < pageSize) return all;
    position = page.changes.at(-1)!.position;
  }
}

const of = (changes: readonly Change[], id: string): string[] => changes.filter((c) => c.id === id).map((c) => c.type);

/**
 * The change feed of decision 036, run against every adapter from the engine conformance suite:
 * each harness is a fresh store, so the feed holds only what a test wrote.
 */
export function changeFeedConformance(harness: () => Connections): void {
  describe("the change feed", () => {
    it("records a creation, each claim (a takeover too) and the end of a log, in order, and never a delta", async () => {
      const h = harness();
      const { id } = await h.engine.create(request);
      const first = await h.engine.claim("w1", 50, never);
      expect(first?.id).toBe(id);
      // The lease expires unrenewed: the next claim is a takeover, and the feed says so again.
      const second = await h.peer.claim("w2", 60_000, never);
      expect(second).toMatchObject({ id, takeover: true });
      await h.peer.append(id, second!.fence, 2, [
        { type: "started", attempt: second!.fence, worker: "w2", model: "sim" },
        { type: "delta", attempt: second!.fence, text: "a" },
        { type: "delta", attempt: second!.fence, text: "b" },
      ]);
      await h.peer.append(id, second!.fence, 5, [
        { type: "completed", attempt: second!.fence, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 2 } },
      ]);
      const changes = await allChanges(h.peer);
      expect(of(changes, id).filter((t) => t !== "retrying" && t !== "rewind")).toEqual(["created", "started", "started", "completed"]);
      expect(changes.some((c) => c.type === "delta")).toBe(false);
      const positions = changes.map((c) => c.position);
      expect(new Set(positions).size).toBe(positions.length);
    });

    it("a cancel, which the engine writes itself, reaches the feed, queued or running", async () => {
      const h = harness();
      const queued = await h.engine.create(request);
      expect(await h.peer.cancel(queued.id)).toBe("cancelled");
      const running = await h.engine.create(request);
      const claim = await h.engine.claim("w1", 60_000, never);
      expect(claim?.id).toBe(running.id);
      expect(await h.peer.cancel(running.id)).toBe("cancelled");
      const changes = await allChanges(h.engine);
      expect(of(changes, queued.id)).toEqual(["created", "cancelled"]);
      expect(of(changes, running.id)).toEqual(["created", "started", "cancelled"]);
    });

    it("reading after a position gives exactly the records past it, on every connection", async () => {
      const h = harness();
      const a = await h.engine.create(request);
      const before = await allChanges(h.engine);
      const position = before.at(-1)!.position;
      const b = await h.peer.create(request);
      const c = await h.engine.create(request);
      const after = await allChanges(h.peer, position, 1);
      expect(after.map((x) => x.id)).toEqual([b.id, c.id]);
      expect(before.map((x) => x.id)).toEqual([a.id]);
      expect((await h.engine.changes(after.at(-1)!.position, 10)).changes).toEqual([]);
    });

    it("waitForChanges resolves for a change written on another connection, and at once when one stands", async () => {
      const h = harness();
      const start = await h.engine.changes(undefined, 10);
      expect(start.changes).toEqual([]);
      let woke = false;
      const waiting = h.engine.waitForChanges(undefined, never).then(() => (woke = true));
      await h.engine.ping();
      expect(woke).toBe(false);
      const { id } = await h.peer.create(request);
      await waiting;
      const page = await h.engine.changes(undefined, 10);
      expect(page.changes.map((c) => c.id)).toContain(id);
      // A record past the position stands already: no wait at all.
      await h.engine.waitForChanges(undefined, never);
      const ctl = new AbortController();
      const idle = h.engine.waitForChanges(page.changes.at(-1)!.position, ctl.signal);
      ctl.abort();
      await idle;
    });

    it("generations pages every generation the engine holds exactly once", async () => {
      const h = harness();
      const ids = new Set<string>();
      for (let i = 0; i < 7; i++) ids.add((await h.engine.create({ ...request, messages: [{ role: "user", content: `n${i}` }] })).id);
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await h.peer.generations(after, 3);
        seen.push(...page.ids);
        if (page.next === undefined) break;
        after = page.next;
      }
      expect(seen.filter((id) => ids.has(id)).sort()).toEqual([...ids].sort());
      expect(new Set(seen).size).toBe(seen.length);
    });
  });
}
