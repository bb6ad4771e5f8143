import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { yieldIfLong } from "../../src/observability/turns.ts";

/** Holds the event loop for `ms`, as a step of parsing a buffered stream does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("yieldIfLong", () => {
  it("many streams with data buffered share one slice per turn of the event loop: timers wait for a slice, not for a slice per stream", async () => {
    // A timer chain marks each time the loop reaches its timers; every step notes the mark it ran under.
    let turn = 0;
    let ticking = true;
    const tick = (): void => {
      turn += 1;
      if (ticking) setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    const stepsPerTurn = new Map<number, number>();
    const stream = async (): Promise<void> => {
      for (let step = 0; step < 15; step += 1) {
        for (let wait = yieldIfLong(); wait; wait = yieldIfLong()) await wait;
        busy(2);
        stepsPerTurn.set(turn, (stepsPerTurn.get(turn) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 20 }, stream));
    ticking = false;
    const total = [...stepsPerTurn.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(300);
    // A 10 ms slice holds five or six 2 ms steps, and on a busy machine two slices may fall between
    // two firings of the timer; a slice of its own per stream let all twenty streams take theirs
    // between two timers (over a hundred steps).
    expect(Math.max(...stepsPerTurn.values())).toBeLessThanOrEqual(16);
    // And every stream went on: the turns are shared, not handed to the first streams only.
    expect(stepsPerTurn.size).toBeGreaterThan(30);
  });
});
