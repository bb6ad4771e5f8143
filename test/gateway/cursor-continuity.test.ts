import { beforeEach, describe, expect, it } from "vitest";
import type { PollResponse } from "../../src/core/wire.ts";
import { useGatewayOnRedis } from "../support/gateway-on-redis.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { entriesOf, readEvents } from "../support/sse-client.ts";
import { never, until } from "../support/waits.ts";

beforeEach((ctx) => requireRedis(ctx));

const delta = (attempt: number, text: string) => ({ type: "delta" as const, attempt, text });

describe("cursors on an engine that can lose acknowledged entries", () => {
  const redis = useGatewayOnRedis("cur");

  it("name the attempt and offset; a cursor whose entry a failover replaced gets reset, one before it continues", async () => {
    const e = redis.get().engine;
    const url = redis.get().node.url;
    const { id } = await e.create({ model: "sim", messages: [{ role: "user", content: "continuity" }] });
    const first = await e.claim("w1", 60_000, never);
    await e.append(id, 1, 2, [
      { type: "started", attempt: 1, worker: "w1", model: "sim" },
      delta(1, "Hello"),
      delta(1, " old"),
      delta(1, " world"),
    ]);
    const seen = await readEvents(url, id, { cutAfter: 5 });
    expect(seen.messages.map((m) => m.id)).toEqual(["0:1", "1:2", "1:3", "1:4", "1:5"]);

    // What a failover that lost entries 4 and 5 does, then another attempt writes there.
    await redis.get().loseEntriesAfter(id, 3);
    await e.release(id, first!.fence);
    const second = await e.claim("w2", 60_000, never);
    expect(second?.fence).toBe(2);
    const usage = { promptTokens: 1, completionTokens: 3 };
    await e.append(id, 2, 4, [
      { type: "started", attempt: 2, worker: "w2", model: "sim" },
      delta(2, " new"),
      { type: "completed", attempt: 2, finishReason: "stop", usage },
    ]);

    // The client that saw "1:5" (now another attempt's entry) must rebuild: reset, then the whole log.
    const stale = await readEvents(url, id, { lastEventId: "1:5" });
    expect(stale.messages[0]?.event).toBe("reset");
    const rebuilt = entriesOf(stale.messages);
    expect(rebuilt.map((x) => x.offset)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(
      rebuilt
        .filter((x) => x.type === "delta")
        .map((x) => (x.type === "delta" ? x.text : ""))
        .join(""),
    ).toBe("Hello new");

    // The client that saw "1:3" (still standing) continues without a reset.
    const fine = await readEvents(url, id, { lastEventId: "1:3" });
    expect(fine.messages.map((m) => m.id)).toEqual(["2:4", "2:5", "2:6"]);

    // A plain offset cannot be checked; it is trusted as before.
    expect((await readEvents(url, id, { lastEventId: "3" })).messages[0]?.id).toBe("2:4");

    // Long-poll applies the same checks: reset and the whole log for the stale cursor, none for the standing one.
    const polled = async (from: string): Promise<PollResponse> =>
      (await (await fetch(`${url}/v1/generations/${id}/poll?from=${encodeURIComponent(from)}`)).json()) as PollResponse;
    const stalePoll = await polled("1:5");
    expect(stalePoll.events.map((e) => (e.type === "entry" ? e.cursor : "reset"))).toEqual([
      "reset",
      "0:1",
      "1:2",
      "1:3",
      "2:4",
      "2:5",
      "2:6",
    ]);
    expect((await polled("1:3")).events.map((e) => (e.type === "entry" ? e.cursor : "reset"))).toEqual(["2:4", "2:5", "2:6"]);
  });

  it("a reader waiting at the end of a log that a failover shortened, which another attempt then ends below it, gets reset and the whole log", async () => {
    const e = redis.get().engine;
    const url = redis.get().node.url;
    const { id } = await e.create({ model: "sim", messages: [{ role: "user", content: "shortened" }] });
    const first = await e.claim("w1", 60_000, never);
    await e.append(id, 1, 2, [
      { type: "started", attempt: 1, worker: "w1", model: "sim" },
      delta(1, "Hello"),
      delta(1, " old"),
      delta(1, " wor"),
      delta(1, "ld"),
    ]);
    let atEnd = (): void => undefined;
    const reachedEnd = new Promise<void>((resolve) => (atEnd = resolve));
    // Bounds only a reader that would otherwise wait for good.
    const live = readEvents(url, id, { signal: AbortSignal.timeout(30_000), cutWhen: (m) => (m.id === "1:6" && atEnd(), false) });
    await reachedEnd;
    // The reader waits: the gateway listens for appends to this log.
    const subscribers = async (): Promise<number> =>
      Number(((await redis.get().raw.call("PUBSUB", "SHARDNUMSUB", `${redis.get().prefix}:{${id}}:n`)) as [string, number])[1]);
    await until(async () => (await subscribers()) === 1, 30_000, "the gateway waiting on the log");

    // A failover that lost entries 4 to 6 while the reader waits after 6; another attempt ends the answer at 5.
    await redis.get().loseEntriesAfter(id, 3);
    await e.release(id, first!.fence);
    const second = await e.claim("w2", 60_000, never);
    expect(second?.fence).toBe(2);
    await e.append(id, 2, 4, [
      { type: "started", attempt: 2, worker: "w2", model: "sim" },
      { type: "completed", attempt: 2, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 1 } },
    ]);

    const seen = await live;
    expect(seen.messages.map((m) => m.id)).toEqual(["0:1", "1:2", "1:3", "1:4", "1:5", "1:6", "0", "0:1", "1:2", "1:3", "2:4", "2:5"]);
    expect(seen.messages[6]?.event).toBe("reset");
    expect(seen.ended).toBe(true);
  });
});
