import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { ProviderError } from "../../src/llm/provider-error.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../../src/llm/provider.ts";
import { streamWithTimeouts } from "../../src/llm/resilience/timeouts.ts";
import { runInSlice, yieldIfLong } from "../../src/observability/turns.ts";

const call = (): ModelCall => ({
  request: { model: "stalling", messages: [{ role: "user", content: "hello" }] },
  prefix: "",
  signal: new AbortController().signal,
});

/** Holds the event loop for `ms`, as work on a CPU does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("model call timeouts", () => {
  it("streams whose model stalls at once time out a slice at a time: the loop turns between their aborts", async () => {
    let turn = 0;
    const abortsPerTurn = new Map<number, number>();
    // A model that sends one token, then nothing: the idle timeout cuts it. Closing its upstream
    // request takes half a millisecond of CPU (a socket closed, its error made), as a real one does.
    const stalling: ModelProvider = {
      name: "stalling",
      stream: ({ signal }) =>
        (async function* (): AsyncGenerator<ModelEvent> {
          yield { type: "open" };
          yield { type: "token", text: "a" };
          await new Promise<void>((resolve) =>
            signal.addEventListener("abort", () => {
              busy(0.5);
              abortsPerTurn.set(turn, (abortsPerTurn.get(turn) ?? 0) + 1);
              resolve();
            }),
          );
          throw signal.reason;
        })(),
    };
    const timeouts = { connectMs: 5_000, firstTokenMs: 5_000, idleMs: 100, totalMs: 60_000 };
    let ticking = true;
    const counting = (async () => {
      while (ticking) {
        await new Promise((resolve) => setImmediate(resolve));
        turn += 1;
      }
    })();
    const streams = 200;
    const outcomes = await Promise.all(
      Array.from({ length: streams }, async () => {
        const events = streamWithTimeouts(stalling, call(), timeouts)[Symbol.asyncIterator]();
        expect((await events.next()).value).toMatchObject({ type: "token" });
        return events.next().catch((error: unknown) => error);
      }),
    );
    ticking = false;
    await counting;
    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(ProviderError);
    expect(outcomes[0]).toMatchObject({ failure: "timeout", message: "the idle timeout (100 ms) ran out" });
    expect([...abortsPerTurn.values()].reduce((a, b) => a + b, 0)).toBe(streams);
    // About twenty half-millisecond aborts fit a 10 ms slice; all 200 timers ran out in one phase.
    expect(Math.max(...abortsPerTurn.values())).toBeLessThanOrEqual(60);
  });

  it("an abort that waited for its turn is dropped when a token came meanwhile: the stream is not cut", async () => {
    let releaseB!: () => void;
    let releaseFinish!: () => void;
    const late: ModelProvider = {
      name: "late",
      stream: ({ signal }) =>
        (async function* (): AsyncGenerator<ModelEvent> {
          yield { type: "open" };
          yield { type: "token", text: "a" };
          // Each wait is cut short by the call's abort, as a socket closed under a read is.
          const until = (set: (release: () => void) => void): Promise<void> =>
            new Promise((resolve, reject) => {
              set(resolve);
              signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
            });
          await until((release) => (releaseB = release));
          yield { type: "token", text: "b" };
          await until((release) => (releaseFinish = release));
          yield { type: "finish", finishReason: "stop", usage: { promptTokens: 1, completionTokens: 2 } };
        })(),
    };
    const timeouts = { connectMs: 5_000, firstTokenMs: 5_000, idleMs: 600, totalMs: 60_000 };
    // Streams that spend more than the shared slice every turn: the timeout's abort, when its timer
    // runs out, always waits for a turn.
    let hogging = true;
    const hog = (async () => {
      while (hogging) {
        for (let wait = yieldIfLong(); wait; wait = yieldIfLong()) await wait;
        busy(12);
      }
    })();
    const events = streamWithTimeouts(late, call(), timeouts)[Symbol.asyncIterator]();
    expect((await events.next()).value).toMatchObject({ type: "token", text: "a" });
    // Just before the idle deadline, forty 2 ms pieces of other work arrive: about five run per
    // turn, and the abort queued behind them waits some eight turns.
    setTimeout(() => {
      for (let i = 0; i < 40; i++) runInSlice(() => busy(2));
    }, 590);
    // After the deadline, and long before the abort's turn, the model's next token comes; a piece
    // queued behind the abort lets the model finish only once the abort has had its turn.
    setTimeout(() => {
      releaseB();
      runInSlice(() => releaseFinish());
    }, 615);
    const texts: string[] = [];
    try {
      for (let step = await events.next(); !step.done; step = await events.next()) {
        if (step.value.type === "token") texts.push(step.value.text);
        if (step.value.type === "finish") break;
      }
    } finally {
      hogging = false;
      await hog;
    }
    expect(texts).toEqual(["b"]);
  });
});
