import { afterEach, describe, expect, it } from "vitest";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import type { Engine } from "../../src/engine/port.ts";
import type { EncodedEntry } from "../../src/gateway/encoded-entry.ts";
import { LogTails, type TailEnd, type TailMember } from "../../src/gateway/log-tail.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { overriding } from "../support/overriding-engine.ts";
import { never, until } from "../support/waits.ts";

/** A follower as the tail sees it: it takes every frame it is given and notes the offsets. */
class Member implements TailMember {
  offset: number;
  attempt: number | undefined;
  readonly taken: number[] = [];

  constructor(offset: number, attempt: number | undefined) {
    this.offset = offset;
    this.attempt = attempt;
  }

  take(frames: readonly EncodedEntry[], from: number): boolean {
    for (const frame of frames.slice(from)) {
      if (frame.offset <= this.offset) continue;
      this.taken.push(frame.offset);
      this.offset = frame.offset;
      this.attempt = frame.attempt;
    }
    return true;
  }

  released(): void {}

  ended(_outcome: TailEnd): void {}
}

describe("a generation's shared tail", () => {
  const closes: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closes.splice(0)) await close();
  });

  it("on a store that can lose entries, a follower one entry short of the tail's last page joins it and is given that page", async () => {
    const memory = new MemoryEngine();
    closes.push(() => memory.close());
    // The entries' attempts are checked as on Redis, whose replicas may lose acknowledged entries.
    const engine = overriding<Engine>(memory, { replicatesAsynchronously: true });
    const { id } = await memory.create({ model: "sim", messages: [{ role: "user", content: "tail" }] });
    const claim = (await memory.claim("w", 60_000, never))!;
    await memory.append(id, claim.fence, 2, [{ type: "started", attempt: claim.fence, worker: "w", model: "sim" }]);
    const tails = new LogTails(engine, new Metrics({ defaultMetrics: false }));

    const first = new Member(2, claim.fence);
    const behind = new Member(2, claim.fence);
    // Members leave whatever happens, so the tail stops waiting and the store can close.
    closes.unshift(async () => {
      tails.leave(id, first);
      tails.leave(id, behind);
    });
    expect(tails.join(id, first)).toBe(true);
    await memory.append(id, claim.fence, 3, [
      { type: "delta", attempt: claim.fence, text: "a" },
      { type: "delta", attempt: claim.fence, text: "b" },
    ]);
    await until(() => first.offset === 4);

    // Read up to entry 2 on its own while the tail read the page of entries 3 and 4.
    expect(tails.join(id, behind)).toBe(true);
    expect(behind.taken).toEqual([3, 4]);
    // Another attempt's entry 2 is not the one the tail stood on: that follower reads on its own.
    expect(tails.join(id, new Member(2, claim.fence + 1))).toBe(false);
    // Further behind than the page: it reads on its own.
    expect(tails.join(id, new Member(1, claim.fence))).toBe(false);
  });
});
