import { performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import type { Engine } from "../../src/engine/port.ts";
import { createModelRegistry, registryOf, simPlan, type ModelRegistry } from "../../src/llm/models.ts";
import { CircuitBreaker } from "../../src/llm/resilience/circuit-breaker.ts";
import { ProviderError } from "../../src/llm/provider-error.ts";
import type { ModelEvent, ModelProvider } from "../../src/llm/provider.ts";
import { SimProvider } from "../../src/llm/sim/sim-provider.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { AnswerRun } from "../../src/worker/answer-run.ts";
import { Worker, type WorkerOptions } from "../../src/worker/worker.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { overriding } from "../support/overriding-engine.ts";
import { never, sleep, until } from "../support/waits.ts";

const request = { model: "sim", messages: [{ role: "user" as const, content: "work" }], max_tokens: 30 };
const text = simTokens(request).join("");

async function readAll(engine: Engine, id: string): Promise<Entry[]> {
  return engine.read(id, 0, 10_000);
}

async function untilTerminal(engine: Engine, id: string): Promise<Entry[]> {
  for (;;) {
    const head = await engine.head(id);
    if (head?.terminal) return readAll(engine, id);
    await engine.wait(id, head?.lastOffset ?? 0, never);
  }
}

describe("the worker", () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  function startWorker(
    engine: Engine,
    options: Partial<WorkerOptions> & { tokensPerSecond?: number; onToken?: () => void; models?: ModelRegistry } = {},
  ): Worker {
    const worker = new Worker({
      engine,
      models:
        options.models ??
        createModelRegistry({
          sim: { tokensPerSecond: options.tokensPerSecond ?? 1000, ...(options.onToken ? { onToken: options.onToken } : {}) },
        }),
      logger: options.logger ?? pino({ level: "silent" }),
      metrics: new Metrics({ defaultMetrics: false }),
      name: options.name ?? "w",
      leaseMs: options.leaseMs ?? 5000,
      concurrency: options.concurrency ?? 8,
      coalesceMs: options.coalesceMs ?? 0,
    });
    worker.start();
    stops.push(() => worker.stop());
    return worker;
  }

  it("with no coalescing window appends one delta per token", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    startWorker(engine, { coalesceMs: 0 });
    const { id } = await engine.create(request);
    const entries = await untilTerminal(engine, id);
    expectExactAnswer(entries, text);
    expect(entries.filter((e) => e.type === "delta")).toHaveLength(30);
  });

  it("with no coalescing window, tokens that arrive while an append is in flight still get one delta each", async () => {
    const memory = new MemoryEngine();
    stops.push(() => memory.close());
    // A store whose appends take 30 ms, against a model at 1,000 tokens/s: most tokens arrive
    // while the previous append is still being written.
    const slow = overriding(memory, {
      append: async (...args) => {
        await sleep(30);
        return memory.append(...args);
      },
    });
    startWorker(slow, { coalesceMs: 0 });
    const { id } = await memory.create(request);
    const entries = await untilTerminal(memory, id);
    expectExactAnswer(entries, text);
    expect(entries.filter((e) => e.type === "delta").map((e) => (e as { text: string }).text)).toEqual(simTokens(request));
  });

  it("a store that stops answering stops the model: the worker holds a bounded number of tokens, then finishes exactly", async () => {
    const memory = new MemoryEngine();
    stops.push(() => memory.close());
    let gate: (() => void) | undefined;
    let held = 0;
    const stalled = overriding(memory, {
      append: async (...args) => {
        const [, , , entries] = args;
        // Deltas past the first wait until the gate opens: the store has stopped answering.
        if (entries[0]?.type === "delta" && held++ > 0 && gate === undefined) await new Promise<void>((resolve) => (gate = resolve));
        return memory.append(...args);
      },
    });
    let emitted = 0;
    const long = { ...request, max_tokens: 5000 };
    startWorker(stalled, { tokensPerSecond: 1_000_000, onToken: () => (emitted += 1), coalesceMs: 20 });
    const { id } = await memory.create(long);
    await until(() => gate !== undefined);
    // Give the model every chance to run ahead: if the worker kept reading, it would emit all 5,000.
    await sleep(300);
    const whileStalled = emitted;
    expect(whileStalled).toBeLessThan(1000);
    gate?.();
    const entries = await untilTerminal(memory, id);
    expectExactAnswer(entries, simTokens(long).join(""));
  });

  it("claiming many queued jobs from a store that answers at once lets timers run between slices", async () => {
    const memory = new MemoryEngine();
    stops.push(() => memory.close());
    const jobs = 120;
    // A store whose claims each take a millisecond of CPU and never wait for I/O, as sqlite's do.
    const claimsPerTurn = new Map<number, number>();
    let turn = 0;
    const busyClaims = overriding(memory, {
      claim: async (...args) => {
        const end = performance.now() + 1;
        while (performance.now() < end);
        const claim = await memory.claim(...args);
        if (claim) claimsPerTurn.set(turn, (claimsPerTurn.get(turn) ?? 0) + 1);
        return claim;
      },
    });
    const ids = [];
    for (let i = 0; i < jobs; i++) ids.push((await memory.create({ ...request, max_tokens: 2 })).id);
    // A timer chain marks each time the loop reaches its timers.
    let ticking = true;
    const tick = (): void => {
      turn += 1;
      if (ticking) setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    try {
      startWorker(busyClaims, { concurrency: jobs });
      for (const id of ids) await untilTerminal(memory, id);
    } finally {
      ticking = false;
    }
    expect([...claimsPerTurn.values()].reduce((a, b) => a + b, 0)).toBe(jobs);
    // A 10 ms slice holds about ten claims, two slices may fall between two firings of the timer
    // on a busy machine; claimed in one chain of promises, all 120 fell between two.
    expect(Math.max(...claimsPerTurn.values())).toBeLessThanOrEqual(30);
  });

  it("coalesces the tokens of one window into one delta", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    startWorker(engine, { coalesceMs: 60, tokensPerSecond: 200 });
    const { id } = await engine.create(request);
    const entries = await untilTerminal(engine, id);
    expectExactAnswer(entries, text);
    const deltas = entries.filter((e) => e.type === "delta").length;
    expect(deltas).toBeGreaterThan(1);
    expect(deltas).toBeLessThan(15);
  });

  it("a window grown wide for slow answers closes early for an answer that has filled it", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    let id = "";
    let emitted = 0;
    const heldAt200: Promise<number>[] = [];
    const models = createModelRegistry({
      sim: {
        tokensPerSecond: 1000,
        onToken: () => {
          emitted += 1;
          if (emitted === 200) heldAt200.push(readAll(engine, id).then((entries) => entries.filter((e) => e.type === "delta").length));
        },
      },
    });
    ({ id } = await engine.create({ ...request, max_tokens: 300 }));
    const claim = await engine.claim("w", 5000, new AbortController().signal);
    // A saturated worker's window: two seconds for an answer holding few tokens, 100 ms once it holds 32.
    const coalesce = { ms: 2000, windowFor: (held: number) => (held >= 32 ? 100 : 2000) };
    const run = new AnswerRun(
      {
        engine,
        models,
        logger: pino({ level: "silent" }),
        metrics: new Metrics({ defaultMetrics: false }),
        worker: "w",
        leaseMs: 5000,
        coalesce,
      },
      claim!,
    );
    await run.run();
    expectExactAnswer(await readAll(engine, id), simTokens({ ...request, max_tokens: 300 }).join(""));
    // 200 ms in, the first token and a delta every 100 ms stand in the log; held for the whole
    // window, only the first token would.
    expect(await heldAt200[0]).toBeGreaterThanOrEqual(2);
  });

  it("while the process is not busy, a token after a quiet window goes out at once instead of waiting for the window", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    let id = "";
    const inLogSoonAfter: Promise<boolean>[] = [];
    // One token a second against a one-second window: each comes after a quiet window. Half a
    // window after each token its delta already stands in the log; a delta that waited for the
    // window would come a whole window after its token.
    startWorker(engine, {
      coalesceMs: 1000,
      tokensPerSecond: 1,
      onToken: () => {
        const expected = inLogSoonAfter.length + 1;
        inLogSoonAfter.push(
          new Promise((resolve) =>
            setTimeout(async () => {
              const deltas = (await engine.read(id, 0, 100)).filter((e) => e.type === "delta");
              resolve(deltas.length === expected);
            }, 500),
          ),
        );
      },
    });
    ({ id } = await engine.create({ ...request, max_tokens: 3 }));
    const entries = await untilTerminal(engine, id);
    expect(entries.filter((e) => e.type === "delta")).toHaveLength(3);
    expect(await Promise.all(inLogSoonAfter)).toEqual([true, true, true]);
  });

  it("a cancel stops the model call", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    let tokens = 0;
    const worker = startWorker(engine, { tokensPerSecond: 200, onToken: () => tokens++ });
    const { id } = await engine.create({ ...request, max_tokens: 5000 });
    while ((await engine.head(id))!.lastOffset < 4) await engine.wait(id, (await engine.head(id))!.lastOffset, never);
    expect(await engine.cancel(id)).toBe("cancelled");
    // The run learns of the cancel and ends; from then on the model produces nothing more.
    await until(() => worker.activeRuns === 0);
    const after = tokens;
    await new Promise((r) => setTimeout(r, 300));
    expect(tokens).toBe(after);
    expect(tokens).toBeLessThan(5000);
    const entries = await readAll(engine, id);
    expect(entries[entries.length - 1]?.type).toBe("cancelled");
  });

  it("a worker paused past its lease can never write into the answer another worker now owns", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    // The paused worker believes its renewals succeed (as after a long pause), so its lease runs out.
    const blind = overriding(engine, { renewAll: async (leases) => leases.map(() => "renewed" as const) });
    // One slot: while its run goes on it does not claim (it would take its own expired lease back
    // and race the successor), and its answer is long enough (5 s) to be running when the successor comes.
    startWorker(blind, { name: "paused", leaseMs: 200, tokensPerSecond: 40, concurrency: 1 });
    const { id } = await engine.create({ ...request, max_tokens: 200 });
    await new Promise((r) => setTimeout(r, 400));
    startWorker(engine, { name: "successor", leaseMs: 5000, tokensPerSecond: 1000 });
    const entries = await untilTerminal(engine, id);
    expectExactAnswer(entries, simTokens({ ...request, max_tokens: 200 }).join(""));
    const starts = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started");
    expect(starts[0]?.worker).toBe("paused");
    expect(starts[starts.length - 1]?.worker).toBe("successor");
    // Once an attempt has started, no entry of an older attempt follows it.
    let current = 0;
    for (const entry of entries.slice(1)) {
      if (entry.type === "started") current = entry.attempt;
      expect(entry.attempt).toBe(current);
    }
  });

  it("a store that fails briefly is retried: the same attempt finishes the answer exactly", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    let appends = 0;
    const flaky = overriding(engine, {
      append: async (...args) => {
        appends += 1;
        if (appends >= 6 && appends <= 8) throw new Error("connection lost");
        return engine.append(...args);
      },
    });
    startWorker(flaky, { coalesceMs: 0, tokensPerSecond: 500, leaseMs: 5000 });
    const { id } = await engine.create(request);
    const entries = await untilTerminal(engine, id);
    expectExactAnswer(entries, text);
    expect(entries.filter((e) => e.type === "started")).toHaveLength(1);
  });

  it("a store down for longer than a lease loses no text: the answer is handed back and finished exactly", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    let appends = 0;
    let downUntil = 0;
    const flaky = overriding(engine, {
      append: async (...args) => {
        if (++appends === 6) downUntil = Date.now() + 1500;
        if (Date.now() < downUntil) throw new Error("connection lost");
        return engine.append(...args);
      },
    });
    startWorker(flaky, { coalesceMs: 0, tokensPerSecond: 500, leaseMs: 400 });
    const { id } = await engine.create(request);
    const entries = await untilTerminal(engine, id);
    expectExactAnswer(entries, text);
    expect(entries.filter((e) => e.type === "started").length).toBeGreaterThanOrEqual(2);
  });

  it("every log line about an answer names its generation and attempt", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    startWorker(engine, { logger: pino({ level: "info" }, sink) });
    const { id } = await engine.create(request);
    await untilTerminal(engine, id);
    await new Promise((r) => setTimeout(r, 20));
    const about = lines.filter((l) => l.generation === id);
    expect(about.map((l) => l.msg)).toEqual(expect.arrayContaining(["answer started", "answer completed"]));
    for (const line of about) expect(line.attempt).toBe(1);
  });

  it("a model that cannot continue rewinds an answer it takes over, then answers afresh", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    const { id } = await engine.create(request);
    const earlier = await engine.claim("earlier", 60_000, never);
    await engine.append(id, earlier!.fence, 2, [
      { type: "started", attempt: 1, worker: "earlier", model: "sim" },
      { type: "delta", attempt: 1, text: "partial text" },
    ]);
    await engine.release(id, earlier!.fence);
    const plan = simPlan(new SimProvider({ tokensPerSecond: 1000 }));
    const models = registryOf([{ ...plan, routes: plan.routes.map((r) => ({ ...r, continuation: "restart" as const })) }]);
    startWorker(engine, { models });
    const entries = await untilTerminal(engine, id);
    expectExactAnswer(entries, text);
    const types = entries.map((e) => e.type);
    expect(types.slice(0, 5)).toEqual(["created", "started", "delta", "rewind", "started"]);
  });

  it("calls that stream count as the provider's successes from their first token: failures between them do not open its breaker", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    // Every other call fails at once; the others stream, slowly, and are still streaming when the
    // next fails. A breaker told of successes only when a call completed saw three failures in a row.
    const sim = new SimProvider({ tokensPerSecond: 50 });
    let calls = 0;
    const flaky: ModelProvider = {
      name: "flaky",
      stream: (call) => {
        calls += 1;
        if (calls % 2 === 1) return sim.stream(call);
        return (async function* (): AsyncGenerator<ModelEvent> {
          yield* [];
          throw new ProviderError("status", "the provider answered 503", { status: 503, retryable: true });
        })();
      },
    };
    const breaker = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 60_000 });
    const plan = simPlan(sim);
    const worker = startWorker(engine, {
      models: registryOf([
        {
          ...plan,
          retry: { ...plan.retry, maxAttempts: 1 },
          routes: [{ name: "sim", provider: flaky, breaker, continuation: "continue" }],
        },
      ]),
    });
    const streaming: string[] = [];
    for (let i = 0; i < 3; i++) {
      const streams = await engine.create({ ...request, max_tokens: 5000 });
      await until(async () => ((await engine.head(streams.id))?.lastOffset ?? 0) >= 3, 10_000, "its first tokens");
      streaming.push(streams.id);
      const fails = await engine.create(request);
      expect((await untilTerminal(engine, fails.id)).at(-1)).toMatchObject({ type: "failed", error: { code: "model_unavailable" } });
    }
    expect(breaker.state).toBe("closed");
    const next = await engine.create({ ...request, max_tokens: 5000 });
    await until(async () => ((await engine.head(next.id))?.lastOffset ?? 0) >= 3, 10_000, "the next answer's first tokens");
    for (const id of [...streaming, next.id]) await engine.cancel(id);
    while (worker.activeRuns > 0) await new Promise((r) => setTimeout(r, 10));
  });

  /** A model whose one route's breaker is `breaker`, retried as the defaults say but for how long it may wait. */
  function behindBreaker(breaker: CircuitBreaker, maxRetryAfterMs: number): ModelRegistry {
    const plan = simPlan(new SimProvider({ tokensPerSecond: 1000 }));
    return registryOf([{ ...plan, retry: { ...plan.retry, maxRetryAfterMs }, routes: plan.routes.map((r) => ({ ...r, breaker })) }]);
  }

  /** Waits until the log of `id` holds a `retrying` entry, and returns it. */
  async function firstRetrying(engine: Engine, id: string): Promise<Entry> {
    for (;;) {
      const entries = await readAll(engine, id);
      const retrying = entries.find((e) => e.type === "retrying");
      if (retrying) return retrying;
      await engine.wait(id, entries.at(-1)?.offset ?? 0, never);
    }
  }

  it(
    "an answer waiting for another's trial call goes on as soon as the trial's first token closes the breaker",
    { timeout: 20_000 },
    async () => {
      const engine = new MemoryEngine();
      stops.push(() => engine.close());
      const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 1 });
      breaker.failed(); // open; half-open a millisecond later
      await new Promise((r) => setTimeout(r, 5));
      expect(breaker.tryAcquire()).toBe(true); // the trial call is out, elsewhere
      startWorker(engine, { models: behindBreaker(breaker, 600_000) });
      const { id } = await engine.create(request);
      expect(await firstRetrying(engine, id)).toMatchObject({ error: { code: "model_unavailable" }, delayMs: 600_000 });
      breaker.answered(); // the trial's first token: the waiting answer calls now, not in ten minutes
      expectExactAnswer(await untilTerminal(engine, id), text);
    },
  );

  it("a worker stopped while an answer waits for an open breaker hands the answer back at once", { timeout: 20_000 }, async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 600_000 });
    breaker.failed();
    const worker = startWorker(engine, { models: behindBreaker(breaker, 900_000) });
    const { id } = await engine.create(request);
    expect(await firstRetrying(engine, id)).toMatchObject({ delayMs: expect.any(Number) });
    await worker.stop(); // not after the cooldown's ten minutes
    expect((await engine.head(id))?.terminal).toBe(false);
    expect(await engine.claim("w2", 5000, never)).toMatchObject({ id }); // handed back: another worker takes it at once
  });

  it("a cancelled trial call does not leave its provider's breaker shut", async () => {
    const engine = new MemoryEngine();
    stops.push(() => engine.close());
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 1 });
    breaker.failed(); // open; half-open a millisecond later
    await new Promise((r) => setTimeout(r, 5));
    const plan = simPlan(new SimProvider({ tokensPerSecond: 200 }));
    const worker = startWorker(engine, { models: registryOf([{ ...plan, routes: plan.routes.map((r) => ({ ...r, breaker })) }]) });
    const first = await engine.create({ ...request, max_tokens: 5000 });
    while ((await engine.head(first.id))!.lastOffset < 3) await engine.wait(first.id, (await engine.head(first.id))!.lastOffset, never);
    await engine.cancel(first.id); // the trial call is stopped, not failed
    while (worker.activeRuns > 0) await new Promise((r) => setTimeout(r, 10));
    const second = await engine.create(request);
    const entries = await untilTerminal(engine, second.id);
    expectExactAnswer(entries, text);
    while (worker.activeRuns > 0) await new Promise((r) => setTimeout(r, 10));
    expect(breaker.state).toBe("closed");
  });
});
