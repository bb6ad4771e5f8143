import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { ProviderError } from "../../src/llm/provider-error.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../../src/llm/provider.ts";
import { streamWithTimeouts } from "../../src/llm/resilience/timeouts.ts";

const call = (): ModelCall => ({
  request: { model: "stalling", messages: [{ role: "user", content: "hello" }] },
  prefix: "",
  signal: new AbortController().signal,
});

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
              const end = performance.now() + 0.5;
              while (performance.now() < end);
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
});
