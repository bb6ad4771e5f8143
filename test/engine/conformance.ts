import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EntryBody, GenerationRequest } from "../../src/core/entries.ts";
import type { Engine } from "../../src/engine/port.ts";
import { never, sleep } from "../support/waits.ts";
import { changeFeedConformance } from "./feed-conformance.ts";

/** A fresh engine per test, and optionally a second connection to the same store. */
export interface EngineHarness {
  readonly engine: Engine;
  /** Another client of the same store (another process's view); the same engine when the store is in-memory. */
  readonly peer: Engine;
  close(): Promise<void>;
}

const request: GenerationRequest = { model: "sim", messages: [{ role: "user", content: "hello" }] };
const delta = (text: string, attempt = 1): EntryBody => ({ type: "delta", attempt, text });

async function createAndClaim(engine: Engine, leaseMs = 10_000): Promise<{ id: string; fence: number }> {
  const created = await engine.create(request);
  const claim = await engine.claim("w1", leaseMs, never);
  if (!claim || claim.id !== created.id) throw new Error("expected to claim the job just created");
  return claim;
}

/** The contract of DESIGN §3, run against every adapter. */
export function engineConformance(name: string, open: () => Promise<EngineHarness>): void {
  describe(`engine conformance: ${name}`, () => {
    let h: EngineHarness;
    beforeEach(async () => {
      h = await open();
    });
    afterEach(async () => {
      await h.close();
    });

    it("creates a log whose entry 1 is created, and a job for it", async () => {
      const created = await h.engine.create(request);
      expect(created.kind).toBe("created");
      const entries = await h.engine.read(created.id, 0, 10);
      expect(entries).toHaveLength(1);
      expect(entries[0]).toMatchObject({ offset: 1, type: "created", request });
      expect(await h.engine.head(created.id)).toMatchObject({ lastOffset: 1, terminal: false });
      expect(await h.engine.head("gen_unknown")).toBeUndefined();
    });

    it("a generation's tenant is written into its created entry, and each tenant's idempotency keys are its own", async () => {
      const acme = await h.engine.create(request, { idempotencyKey: "order-1", tenant: "acme" });
      const beta = await h.peer.create(request, { idempotencyKey: "order-1", tenant: "beta" });
      expect(beta.id).not.toBe(acme.id);
      expect(await h.peer.create(request, { idempotencyKey: "order-1", tenant: "acme" })).toEqual({ kind: "existing", id: acme.id });
      expect((await h.engine.create(request, { idempotencyKey: "order-1" })).kind).toBe("created"); // no tenant: a third namespace
      const [created] = await h.peer.read(acme.id, 0, 1);
      expect(created).toMatchObject({ offset: 1, type: "created", request, tenant: "acme" });
      const [untenanted] = await h.engine.read((await h.engine.create(request)).id, 0, 1);
      expect(untenanted).not.toHaveProperty("tenant");
    });

    it("findCreated tells what a create with a key seen before would answer, and creates nothing", async () => {
      expect(await h.engine.findCreated(request, { idempotencyKey: "find-1", tenant: "acme" })).toBeUndefined();
      expect(await h.engine.findCreated(request, {})).toBeUndefined();
      const first = await h.engine.create(request, { idempotencyKey: "find-1", tenant: "acme" });
      expect(await h.peer.findCreated(request, { idempotencyKey: "find-1", tenant: "acme" })).toEqual({ kind: "existing", id: first.id });
      const other = { ...request, messages: [{ role: "user" as const, content: "something else" }] };
      expect(await h.peer.findCreated(other, { idempotencyKey: "find-1", tenant: "acme" })).toEqual({
        kind: "idempotencyConflict",
        id: first.id,
      });
      expect(await h.engine.findCreated(request, { idempotencyKey: "find-1", tenant: "beta" })).toBeUndefined();
      expect(await h.engine.findCreated(request, { idempotencyKey: "find-2" })).toBeUndefined(); // still nothing made under it
      expect((await h.engine.create(request, { idempotencyKey: "find-2" })).kind).toBe("created");
    });

    it("an idempotency key gives back the same generation, and refuses a different request", async () => {
      const first = await h.engine.create(request, { idempotencyKey: "k1" });
      const again = await h.peer.create(request, { idempotencyKey: "k1" });
      expect(again).toEqual({ kind: "existing", id: first.id });
      const other = await h.engine.create({ ...request, seed: 7 }, { idempotencyKey: "k1" });
      expect(other).toEqual({ kind: "idempotencyConflict", id: first.id });
      const claim = await h.engine.claim("w", 10_000, never);
      expect(claim?.id).toBe(first.id);
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(), 100);
      expect(await h.engine.claim("w", 10_000, ctl.signal)).toBeUndefined();
    });

    it("appends at the expected offset and reads ranges in order", async () => {
      const { id, fence } = await createAndClaim(h.engine);
      expect(await h.engine.append(id, fence, 2, [delta("a"), delta("b")])).toEqual({ kind: "appended", nextOffset: 4 });
      expect(await h.engine.append(id, fence, 4, [delta("c")])).toEqual({ kind: "appended", nextOffset: 5 });
      const all = await h.engine.read(id, 0, 100);
      expect(all.map((e) => e.offset)).toEqual([1, 2, 3, 4]);
      expect((await h.engine.read(id, 2, 1)).map((e) => e.offset)).toEqual([3]);
      expect(await h.engine.read(id, 4, 10)).toEqual([]);
      expect(all[1]).toMatchObject({ offset: 2, type: "delta", attempt: fence, text: "a" });
      expect(typeof all[1]?.at).toBe("string");
    });

    it("re-sending an entry at its offset is a no-op", async () => {
      const { id, fence } = await createAndClaim(h.engine);
      await h.engine.append(id, fence, 2, [delta("a"), delta("b")]);
      expect(await h.engine.append(id, fence, 2, [delta("a"), delta("b")])).toEqual({ kind: "duplicate", nextOffset: 4 });
      expect(await h.engine.append(id, fence, 3, [delta("b")])).toEqual({ kind: "duplicate", nextOffset: 4 });
      expect((await h.engine.head(id))?.lastOffset).toBe(3);
    });

    it("an append at a wrong offset is refused and writes nothing", async () => {
      const { id, fence } = await createAndClaim(h.engine);
      await h.engine.append(id, fence, 2, [delta("a")]);
      expect(await h.engine.append(id, fence, 2, [delta("different")])).toEqual({ kind: "offsetConflict", lastOffset: 2 });
      expect(await h.engine.append(id, fence, 5, [delta("x"), delta("y")])).toEqual({ kind: "offsetConflict", lastOffset: 2 });
      expect((await h.engine.read(id, 0, 100)).map((e) => e.offset)).toEqual([1, 2]);
    });

    it("a batch with a terminal entry before its end is refused", async () => {
      const { id, fence } = await createAndClaim(h.engine);
      await expect(h.engine.append(id, fence, 2, [{ type: "cancelled", attempt: fence }, delta("x")])).rejects.toThrow(RangeError);
      expect((await h.engine.head(id))?.lastOffset).toBe(1);
    });

    it("two claimers never own one job", async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 30; i++) ids.add((await h.engine.create({ ...request, seed: i })).id);
      const owners = new Map<string, string[]>();
      const ctl = new AbortController();
      const claimLoop = async (engine: Engine, who: string): Promise<void> => {
        for (;;) {
          const claim = await engine.claim(who, 60_000, ctl.signal);
          if (!claim) return;
          owners.set(claim.id, [...(owners.get(claim.id) ?? []), who]);
          expect(claim.fence).toBe(1);
          if (owners.size === ids.size) ctl.abort();
        }
      };
      await Promise.all([claimLoop(h.engine, "a"), claimLoop(h.peer, "b"), claimLoop(h.engine, "c"), claimLoop(h.peer, "d")]);
      expect(new Set(owners.keys())).toEqual(ids);
      for (const who of owners.values()) expect(who).toHaveLength(1);
    });

    it("a lease not renewed is taken over with a higher fence, and the old owner is refused", async () => {
      const { id, fence } = await createAndClaim(h.engine, 150);
      await h.engine.append(id, fence, 2, [delta("old")]);
      const takeover = await h.peer.claim("w2", 10_000, never);
      expect(takeover).toEqual({ id, fence: fence + 1, takeover: true });
      expect(await h.engine.append(id, fence, 3, [delta("late")])).toEqual({ kind: "staleFence", fence: fence + 1 });
      expect(await h.engine.renew(id, fence, 10_000)).toBe("lost");
      expect(await h.peer.append(id, fence + 1, 3, [delta("new", fence + 1)])).toEqual({ kind: "appended", nextOffset: 4 });
      expect((await h.engine.read(id, 0, 10)).map((e) => (e.type === "delta" ? e.text : e.type))).toEqual(["created", "old", "new"]);
    });

    it("a renewed lease is not taken over", async () => {
      // Renewed every tenth of the lease: a loaded machine would have to stall ten times as long to lose it.
      const { id, fence } = await createAndClaim(h.engine, 1000);
      const ctl = new AbortController();
      const other = h.peer.claim("w2", 10_000, ctl.signal);
      for (let i = 0; i < 15; i++) {
        await sleep(100);
        expect(await h.engine.renew(id, fence, 1000)).toBe("renewed");
      }
      ctl.abort();
      expect(await other).toBeUndefined();
    });

    it("claim blocks while there is no job and wakes when one is created", async () => {
      const pending = h.engine.claim("w", 10_000, never);
      await sleep(50);
      const created = await h.peer.create(request);
      expect((await pending)?.id).toBe(created.id);
    });

    it("a released job is claimed again at once with a higher fence", async () => {
      const { id, fence } = await createAndClaim(h.engine, 60_000);
      await h.engine.release(id, fence);
      const again = await h.peer.claim("w2", 10_000, never);
      expect(again).toEqual({ id, fence: fence + 1, takeover: false });
      await h.engine.release(id, fence); // stale release: nothing happens
      expect(await h.peer.renew(id, fence + 1, 10_000)).toBe("renewed");
    });

    it("renewAll renews every lease still held in one call, and names each one lost or closed", async () => {
      // The lease to be taken over is claimed first and runs out first, however slow the machine;
      // the held one is renewed every tenth of its lease, as in the test above.
      const taken = await createAndClaim(h.engine, 150);
      const held = await createAndClaim(h.engine, 1000);
      const finished = await createAndClaim(h.engine, 10_000);
      expect(await h.engine.cancel(finished.id)).toBe("cancelled");
      const takeover = await h.peer.claim("w2", 10_000, never);
      expect(takeover).toMatchObject({ id: taken.id, takeover: true });
      const leases = [held, taken, finished, { id: "gen_00000000000000000000000000", fence: 1 }];
      // Renewed past the moment its first lease would have run out: the held job is not taken over.
      for (let i = 0; i < 12; i++) {
        expect(await h.engine.renewAll(leases, 1000)).toEqual(["renewed", "lost", "closed", "closed"]);
        await sleep(100);
      }
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(), 100);
      expect(await h.peer.claim("w3", 10_000, ctl.signal)).toBeUndefined();
      expect(await h.engine.renewAll([], 1000)).toEqual([]);
    });

    it("a terminal entry finishes the job and closes the log", async () => {
      const { id, fence } = await createAndClaim(h.engine, 100);
      const completed: EntryBody = {
        type: "completed",
        attempt: fence,
        finishReason: "stop",
        usage: { promptTokens: 1, completionTokens: 1 },
      };
      expect(await h.engine.append(id, fence, 2, [delta("a"), completed])).toEqual({ kind: "appended", nextOffset: 4 });
      expect(await h.engine.head(id)).toMatchObject({ lastOffset: 3, terminal: true });
      expect(await h.engine.append(id, fence, 4, [delta("b")])).toEqual({ kind: "closed", lastOffset: 3 });
      expect(await h.engine.append(id, fence, 2, [delta("a"), completed])).toEqual({ kind: "duplicate", nextOffset: 4 });
      expect(await h.engine.renew(id, fence, 100)).toBe("closed");
      await sleep(150);
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(), 100);
      expect(await h.peer.claim("w2", 100, ctl.signal)).toBeUndefined();
    });

    it("cancel ends the log with cancelled whoever holds the lease", async () => {
      const { id, fence } = await createAndClaim(h.engine);
      await h.engine.append(id, fence, 2, [delta("a")]);
      expect(await h.peer.cancel(id)).toBe("cancelled");
      expect(await h.engine.append(id, fence, 3, [delta("b")])).toEqual({ kind: "closed", lastOffset: 3 });
      expect(await h.engine.renew(id, fence, 1000)).toBe("closed");
      expect((await h.engine.read(id, 2, 10))[0]).toMatchObject({ offset: 3, type: "cancelled" });
      expect(await h.engine.cancel(id)).toBe("alreadyFinished");
      expect(await h.engine.cancel("gen_00000000000000000000000000")).toBe("notFound");
      expect(await h.engine.append("gen_00000000000000000000000000", 1, 2, [delta("x")])).toEqual({ kind: "notFound" });
    });

    it("cancelling a queued job means no worker ever runs it", async () => {
      const created = await h.engine.create(request);
      expect(await h.engine.cancel(created.id)).toBe("cancelled");
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(), 100);
      expect(await h.peer.claim("w", 1000, ctl.signal)).toBeUndefined();
    });

    it("waiting readers wake on append, also on another connection", async () => {
      const { id, fence } = await createAndClaim(h.engine);
      const local = h.engine.wait(id, 1, never);
      const remote = h.peer.wait(id, 1, never);
      let woke = false;
      void Promise.all([local, remote]).then(() => (woke = true));
      await sleep(60);
      expect(woke).toBe(false);
      await h.engine.append(id, fence, 2, [delta("a")]);
      await Promise.all([local, remote]);
      await h.peer.wait(id, 1, never); // already past: resolves at once
    });

    it("a wait ends when its signal aborts", async () => {
      const { id } = await createAndClaim(h.engine);
      const ctl = new AbortController();
      const waiting = h.engine.wait(id, 1, ctl.signal);
      ctl.abort();
      await waiting;
      expect((await h.engine.head(id))?.lastOffset).toBe(1);
    });

    it("a chat names the generation last set for it, on every connection", async () => {
      const first = await h.engine.create(request);
      const second = await h.engine.create({ ...request, seed: 2 });
      expect(await h.engine.chatGeneration("chat-a")).toBeUndefined();
      await h.engine.setChatGeneration("chat-a", first.id);
      await h.engine.setChatGeneration("chat-b", second.id);
      expect(await h.peer.chatGeneration("chat-a")).toBe(first.id);
      await h.peer.setChatGeneration("chat-a", second.id);
      expect(await h.engine.chatGeneration("chat-a")).toBe(second.id);
      expect(await h.engine.chatGeneration("chat-b")).toBe(second.id);
      expect(await h.engine.chatGeneration("chat-c")).toBeUndefined();
    });

    it("a chat still names its generation after the answer ended, however it ended", async () => {
      const { id, fence } = await createAndClaim(h.engine);
      await h.engine.setChatGeneration("chat-done", id);
      const completed: EntryBody = {
        type: "completed",
        attempt: fence,
        finishReason: "stop",
        usage: { promptTokens: 1, completionTokens: 1 },
      };
      await h.engine.append(id, fence, 2, [delta("a"), completed]);
      expect(await h.peer.chatGeneration("chat-done")).toBe(id);
      const cancelled = await h.engine.create({ ...request, seed: 3 });
      await h.engine.cancel(cancelled.id);
      await h.engine.setChatGeneration("chat-late", cancelled.id); // named after its end
      expect(await h.peer.chatGeneration("chat-late")).toBe(cancelled.id);
    });

    it("the store answers ping", async () => {
      await h.engine.ping();
    });

    changeFeedConformance(() => h);
  });
}
