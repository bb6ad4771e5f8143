import { performance } from "node:perf_hooks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runInSlice, yieldIfLong } from "../../src/observability/turns.ts";
import { timerTurns } from "../support/timer-turns.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

/** Holds the event loop for `ms`, as a step of parsing a buffered stream does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("yieldIfLong", () => {
  it("many streams with data buffered share one slice per turn of the event loop: timers wait for a slice, not for a slice per stream", async () => {
    // Every step notes the timers' mark it ran under.
    const timers = timerTurns();
    const stepsPerTurn = new Map<number, number>();
    const stream = async (): Promise<void> => {
      for (let step = 0; step < 15; step += 1) {
        for (let wait = yieldIfLong(); wait; wait = yieldIfLong()) await wait;
        busy(2);
        stepsPerTurn.set(timers.now(), (stepsPerTurn.get(timers.now()) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 20 }, stream));
    timers.stop();
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

describe("runInSlice", () => {
  it("pieces that each start a chain of promises run a slice at a time, the chains' work counted", async () => {
    const timers = timerTurns();
    const piecesPerTurn = new Map<number, number>();
    // A hundred pieces arriving in one turn, each in a callback of its own, as the requests read in
    // one poll of the sockets do. Each piece's work happens a few promises after it starts, as a
    // request's hooks and handler do.
    const pieces = Array.from(
      { length: 100 },
      () =>
        new Promise<void>((resolve) =>
          setImmediate(() =>
            runInSlice(() => {
              void Promise.resolve()
                .then(() => undefined)
                .then(() => {
                  busy(2);
                  piecesPerTurn.set(timers.now(), (piecesPerTurn.get(timers.now()) ?? 0) + 1);
                  resolve();
                });
            }),
          ),
        ),
    );
    await Promise.all(pieces);
    timers.stop();
    expect([...piecesPerTurn.values()].reduce((a, b) => a + b, 0)).toBe(100);
    // About five 2 ms pieces fit a slice; two slices may fall between two timers on a busy machine.
    expect(Math.max(...piecesPerTurn.values())).toBeLessThanOrEqual(16);
  });

  it("waiting pieces have a slice of their own: streams that spend every slice do not keep them waiting", async () => {
    // The clock moves only with the work: the pieces a slice holds are counted in work, and a
    // machine that took the CPU away mid-piece cannot make a slice hold fewer.
    let clock = performance.now();
    vi.spyOn(performance, "now").mockImplementation(() => clock);
    const busy = (ms: number): void => {
      clock += ms;
    };
    let hogging = true;
    let hogTurns = 0;
    const hog = (async () => {
      while (hogging) {
        for (let wait = yieldIfLong(); wait; wait = yieldIfLong()) await wait;
        busy(12); // more than a slice, every turn
        hogTurns += 1;
      }
    })();
    await new Promise((resolve) => setImmediate(resolve));
    const ranAfter: number[] = [];
    const started = hogTurns;
    // Forty 1 ms pieces: about ten fit a slice, so they run over four turns or so of the hog.
    await Promise.all(
      Array.from(
        { length: 40 },
        () =>
          new Promise<void>((resolve) =>
            setImmediate(() =>
              runInSlice(() => {
                busy(1);
                ranAfter.push(hogTurns - started);
                resolve();
              }),
            ),
          ),
      ),
    );
    hogging = false;
    await hog;
    expect(ranAfter).toHaveLength(40);
    // Each turn holds a slice of pieces beside the hog's slice: a few turns, not one per piece (40)
    // nor never.
    expect(Math.max(...ranAfter)).toBeLessThanOrEqual(15);
    expect(new Set(ranAfter).size).toBeGreaterThanOrEqual(2);
  });
});
