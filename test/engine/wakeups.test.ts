import { describe, expect, it } from "vitest";
import { Wakeups } from "../../src/engine/wakeups.ts";
import { never } from "../support/waits.ts";

describe("Wakeups", () => {
  it("gives every waiter of a key the wake's hint", async () => {
    const wakeups = new Wakeups<number>();
    const first = wakeups.next("log", never);
    const second = wakeups.next("log", never);
    const other = wakeups.park("other", never);
    wakeups.wake("log", Infinity, 7);
    expect(await first).toBe(7);
    expect(await second).toBe(7);
    expect(wakeups.keys()).toEqual(["other"]);
    other.done();
    expect(await other.woken).toBeUndefined();
  });

  it("gives no hint to a wait that ends by a wake without one, its signal or its timeout", async () => {
    const wakeups = new Wakeups<number>();
    const woken = wakeups.next("a", never);
    wakeups.wake("a");
    expect(await woken).toBeUndefined();

    const controller = new AbortController();
    const aborted = wakeups.next("b", controller.signal);
    controller.abort();
    expect(await aborted).toBeUndefined();

    expect(await wakeups.next("c", never, 1)).toBeUndefined();
    expect(wakeups.keys()).toEqual([]);
  });

  it("wakes only the `count` longest waiting, with the hint", async () => {
    const wakeups = new Wakeups<string>();
    const results: (string | undefined)[] = [];
    const waits = [0, 1, 2].map((i) => wakeups.next("claim", never).then((hint) => (results[i] = hint)));
    wakeups.wake("claim", 2, "job");
    await Promise.all(waits.slice(0, 2));
    expect(results).toEqual(["job", "job"]);
    wakeups.wake("claim", 1, "later");
    await waits[2];
    expect(results).toEqual(["job", "job", "later"]);
  });
});
