import type { EntryBody, ErrorInfo, GenerationRequest } from "../core/entries.ts";
import type { AppendResult, Claim, Engine, Lease } from "../engine/port.ts";
import { setTimeout as sleep } from "node:timers/promises";
import type { ModelRegistry } from "../llm/models.ts";
import { ProviderError } from "../llm/provider-error.ts";
import { retryDelay } from "../llm/resilience/backoff.ts";
import { asProviderError, failureCode, type ModelPlan, type ModelRoute } from "../llm/resilience/plan.ts";
import { streamWithTimeouts } from "../llm/resilience/timeouts.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { readAnswerLog } from "./answer-log.ts";
import { traceRun, type RunTrace } from "./run-trace.ts";

export interface RunContext {
  readonly engine: Engine;
  readonly models: ModelRegistry;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly worker: string;
  readonly leaseMs: number;
  /** The worker's coalescing window (`CoalesceWindow`): its `ms` may change while a run goes on; `windowFor` is the one for an answer holding so many tokens. */
  readonly coalesce: { readonly ms: number; windowFor(heldTokens: number): number };
}

/** Why a run stopped before its terminal entry. */
export type StopReason = "shutdown" | "leaseLost" | "closed" | "storeFailed";

/** The model itself failed (as opposed to the store, or a stop). */
class ModelFailed extends Error {
  constructor(
    readonly error: unknown,
    /** Whether the call had streamed a token before it failed. */
    readonly afterFirstToken = false,
  ) {
    super(error instanceof Error ? error.message : String(error));
  }
}

class RunStopped extends Error {
  constructor(readonly reason: StopReason) {
    super(`run stopped: ${reason}`);
  }
}

/**
 * Tokens a run holds that are not yet in the log before it stops reading the model: it then waits
 * for the store, and the model's socket fills instead of the worker's memory.
 */
const MAX_PENDING_TOKENS = 256;

/**
 * One attempt at one answer, under one lease: reads the log, continues the text from where it
 * stands, appends coalesced deltas under its fence and ends the log, or hands the job back.
 */
export class AnswerRun {
  readonly #ctx: RunContext;
  readonly #claim: Claim;
  readonly #abort = new AbortController();
  #stopReason: StopReason | undefined;
  #nextOffset = 0;
  /** Tokens not yet in the log, in order. */
  #pending: string[] = [];
  /** The model's tokens in {@link #pending} (a piece may hold several). */
  #pendingTokens = 0;
  #flushTimer: NodeJS.Timeout | undefined;
  /** When the flush timer fires (ms since the epoch). */
  #flushDue = 0;
  /** When the last delta left the buffer: the coalescing window runs from there. */
  #lastFlushAt = 0;
  /** Delta appends under way: while one is, tokens gather to go out together after it. */
  #deltasInFlight = 0;
  /**
   * The answer's text as this run knows it: the log's text plus every delta this run handed to the
   * log since. Built of the deltas' own strings, which {@link #written} holds too, so an answer's
   * text is held once, not twice (decision 069). The tokens still in {@link #pending} are not in it,
   * but it is read only after a `retrying` or `started` entry was written, and writing any entry
   * but a delta first hands those tokens to the log.
   */
  #text = "";
  #writes: Promise<void> = Promise.resolve();
  /** Every entry this run wrote, by offset, to repair a log a failover cut short. */
  readonly #written = new Map<number, EntryBody>();
  /** Its spans while tracing is on; a shared no-op while it is off (decision 040). */
  readonly #trace: RunTrace;

  constructor(ctx: RunContext, claim: Claim) {
    this.#ctx = ctx;
    this.#claim = claim;
    this.#trace = traceRun(claim, ctx.worker);
  }

  /**
   * Logs with the answer's bindings. No child logger per run: pino's child costs a hidden class
   * and about 2 KB for as long as the answer lasts, and most answers log a line or two.
   */
  #say(level: "info" | "warn" | "error", fields: Record<string, unknown> | undefined, message: string): void {
    const logger = this.#ctx.logger;
    if (!logger.isLevelEnabled(level)) return;
    logger[level]({ generation: this.#claim.id, attempt: this.#claim.fence, ...fields }, message);
  }

  /** The lease this run holds, for the worker's lease keeper. */
  get lease(): Lease {
    return this.#claim;
  }

  /** Stops the model call; the run flushes what it has and hands the job back (`shutdown`). */
  stop(reason: StopReason): void {
    this.#stopReason ??= reason;
    this.#abort.abort(new RunStopped(reason));
  }

  async run(): Promise<void> {
    const { fence } = this.#claim;
    let ended = false;
    try {
      const { request, text, lastOffset, terminal, traceparent } = await readAnswerLog(this.#ctx.engine, this.#claim.id);
      this.#trace.begin(traceparent);
      if ((ended = terminal)) return;
      this.#nextOffset = lastOffset + 1;
      if (this.#claim.takeover) {
        this.#ctx.metrics.takeovers.inc();
        this.#say("warn", { fromOffset: lastOffset }, "took over an answer whose lease expired");
      }
      const plan = this.#ctx.models.plan(request.model);
      if (!plan) {
        await this.#write([
          { type: "failed", attempt: fence, error: { code: "unknown_model", message: `no model named ${request.model}` } },
        ]);
        return;
      }
      this.#text = text;
      await this.#serve(plan, request);
    } catch (error) {
      await this.#onError(error);
    } finally {
      if (this.#flushTimer) clearTimeout(this.#flushTimer);
      this.#trace.end(ended ? "already_ended" : this.#stopReason);
    }
  }

  /**
   * Calls the model's routes until one finishes the answer: retries a route with backoff while
   * its failures are retryable, then falls back to the next; every retry is a `retrying` entry and
   * every call a `started` one. `continue` sends the text so far as a prefix; `restart` rewinds it.
   */
  async #serve(plan: ModelPlan, request: GenerationRequest): Promise<void> {
    const fence = this.#claim.fence;
    let routeIndex = 0;
    let triesOnRoute = 0;
    /** Since when every breaker left has refused this answer, in a row (`performance.now()`). */
    let refusedSince: number | undefined;
    for (;;) {
      const route = plan.routes.slice(routeIndex).find((r) => r.breaker.tryAcquire());
      if (!route) {
        // Every breaker left is open, or busy with its one trial call: no call is made, and the
        // answer waits for the first that lets one through, as for a `Retry-After`, up to
        // `maxRetryAfterMs` in all; then it fails.
        refusedSince ??= performance.now();
        const failure = new ProviderError("circuitOpen", `every provider of ${plan.name} is failing (circuit open)`, { retryable: true });
        const code = failureCode(failure);
        const wait = breakersLetThrough(plan.routes.slice(routeIndex), refusedSince + plan.retry.maxRetryAfterMs - performance.now());
        this.#say("warn", { code, waitMs: wait?.ms }, "every breaker of the model is open");
        if (!wait) return await this.#fail({ code, message: failure.message });
        await this.#write([{ type: "retrying", attempt: fence, error: { code, message: failure.message }, delayMs: Math.round(wait.ms) }]);
        await wait.until(this.#abort.signal);
        if (this.#stopReason) throw new RunStopped(this.#stopReason);
        continue;
      }
      refusedSince = undefined;
      let failure: ProviderError;
      if (plan.routes.indexOf(route) !== routeIndex) triesOnRoute = 0; // a breaker skipped ahead
      routeIndex = plan.routes.indexOf(route);
      if (route.continuation === "restart" && this.#text !== "") {
        // This model cannot continue a prefix (after a failure, a takeover or a fallback): rewind.
        try {
          await this.#flush();
          await this.#write([{ type: "rewind", attempt: fence, toOffset: 1 }]);
        } catch (error) {
          route.breaker.abandon(); // no call went out: a trial call it was given is not left out for good
          throw error;
        }
        this.#text = "";
      }
      this.#trace.callStarted(route, routeIndex);
      try {
        await this.#callOnce(plan, route, request);
        route.breaker.succeeded();
        this.#trace.callEnded("completed");
        return;
      } catch (error) {
        if (!(error instanceof ModelFailed)) {
          route.breaker.abandon(); // a stop is not the provider's failure
          this.#trace.callEnded("stopped");
          throw error;
        }
        failure = asProviderError(error.error, route.name);
        route.breaker.failed(error.afterFirstToken);
        this.#trace.callEnded("failed", failureCode(failure), failure.message);
      }
      triesOnRoute += 1;
      const retrySame =
        failure.details.retryable &&
        triesOnRoute < plan.retry.maxAttempts &&
        (failure.details.retryAfterMs ?? 0) <= plan.retry.maxRetryAfterMs;
      if (!retrySame) {
        routeIndex += 1;
        triesOnRoute = 0;
      }
      const code = failureCode(failure);
      this.#say("warn", { model: route.name, failure: failure.failure, status: failure.details.status, code }, "model call failed");
      if (routeIndex >= plan.routes.length) return await this.#fail({ code, message: failure.message });
      const delayMs = retrySame ? retryDelay(plan.retry, triesOnRoute - 1, failure.details.retryAfterMs) : 0;
      await this.#write([{ type: "retrying", attempt: fence, error: { code, message: failure.message }, delayMs }]);
      if (delayMs > 0) await sleep(delayMs, undefined, { signal: this.#abort.signal }).catch(() => undefined);
      if (this.#stopReason) throw new RunStopped(this.#stopReason);
    }
  }

  /** Ends the log with `failed`. */
  async #fail(error: ErrorInfo): Promise<void> {
    await this.#write([{ type: "failed", attempt: this.#claim.fence, error }]);
    this.#ctx.metrics.answersFinished.inc({ outcome: "failed" });
  }

  /** One call on one route; resolves when the answer is complete, throws ModelFailed on failure. */
  async #callOnce(plan: ModelPlan, route: ModelRoute, request: GenerationRequest): Promise<void> {
    const fence = this.#claim.fence;
    await this.#write([{ type: "started", attempt: fence, worker: this.#ctx.worker, model: route.name }]);
    this.#ctx.metrics.answersStarted.inc();
    this.#say("info", { model: route.name, prefixChars: this.#text.length }, "answer started");
    const call = { request, prefix: this.#text, signal: this.#abort.signal };
    const events = streamWithTimeouts(route.provider, call, plan.timeouts)[Symbol.asyncIterator]();
    let serving = false;
    try {
      for (;;) {
        const step = await events.next().catch((error: unknown) => {
          throw this.#stopReason ? new RunStopped(this.#stopReason) : new ModelFailed(error, serving);
        });
        if (step.done)
          throw new ModelFailed(
            new ProviderError("protocol", "the stream ended without a finish", { retryable: true, provider: route.name }),
            serving,
          );
        const event = step.value;
        if (event.type === "token") {
          // The provider answers: calls failing before their first token among a thousand long
          // streams are not failures in a row (decision 062).
          if (!serving) {
            serving = true;
            route.breaker.answered();
          }
          this.#buffer(event.text, event.tokens ?? 1);
          // Backpressure: past a bound, the model waits for the store (a failed write stops the run).
          if (this.#pendingTokens >= MAX_PENDING_TOKENS) await this.#flush().catch(() => undefined);
        } else if (event.type === "finish") {
          await this.#write([{ type: "completed", attempt: fence, finishReason: event.finishReason, usage: event.usage }]);
          this.#ctx.metrics.answersFinished.inc({ outcome: "completed" });
          this.#say("info", { usage: event.usage, model: route.name }, "answer completed");
          return;
        }
      }
    } finally {
      // Closes the upstream request and the timeout timers, whatever ended the call.
      await events.return?.()?.catch(() => undefined);
    }
  }

  async #onError(error: unknown): Promise<void> {
    const reason = this.#stopReason ?? (error instanceof RunStopped ? error.reason : undefined);
    if (reason === "shutdown") {
      // Keep what the model already produced, then hand the job over at once.
      await this.#flush().catch(() => undefined);
      await this.#writes.catch(() => undefined);
      await this.#ctx.engine.release(this.#claim.id, this.#claim.fence).catch(() => undefined);
      this.#say("info", undefined, "answer handed back on shutdown");
      return;
    }
    if (reason !== undefined) {
      this.#say("warn", { reason }, "answer run stopped");
      return;
    }
    if (!(error instanceof ModelFailed)) {
      // The store failed (or a bug): nothing more is written. The job is not handed back at once:
      // its lease runs out first, so a failure that repeats cannot spin claim after claim.
      this.#say("error", { err: error }, "the run failed; the answer is taken over when its lease runs out");
      return;
    }
    const info: ErrorInfo = { code: "model_error", message: error.message };
    this.#say("error", { err: error }, "answer failed");
    try {
      await this.#flush();
      await this.#fail(info);
    } catch (writeError) {
      // The store itself failed: the lease runs out and another worker takes the answer over.
      this.#say("error", { err: writeError }, "could not record the failure");
    }
  }

  #buffer(text: string, tokens: number): void {
    this.#pending.push(text);
    this.#pendingTokens += tokens;
    this.#scheduleFlush();
  }

  /**
   * One delta append at a time: tokens that arrive while one is being written gather and go out
   * together once it is done (one entry each without a window, one merged entry with one). With a
   * window, deltas are also at least a window apart: a token after a quiet spell goes out at once,
   * and only tokens that follow closely are held to be merged. So the window costs nothing when
   * there is nothing to merge, and a slow store merges more whatever the window.
   */
  #scheduleFlush(): void {
    if (this.#deltasInFlight > 0 || this.#pending.length === 0) return;
    // A window grown wide for slow answers closes sooner for one whose tokens have filled it.
    const due = this.#lastFlushAt + this.#ctx.coalesce.windowFor(this.#pendingTokens);
    if (this.#flushTimer) {
      if (due >= this.#flushDue) return;
      clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    const wait = due - Date.now();
    if (wait <= 0) void this.#flush();
    else {
      this.#flushDue = due;
      this.#flushTimer = setTimeout(() => void this.#flush(), wait);
    }
  }

  /** Moves buffered text into the log, after any write already under way. */
  #flush(): Promise<void> {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#pending.length === 0) return this.#writes;
    this.#lastFlushAt = Date.now();
    const pieces = this.#pending;
    const tokens = this.#pendingTokens;
    this.#pending = [];
    this.#pendingTokens = 0;
    const attempt = this.#claim.fence;
    const texts = this.#ctx.coalesce.ms <= 0 ? pieces : [pieces.join("")];
    for (const text of texts) this.#text += text;
    const write = this.#write(texts.map((text) => ({ type: "delta", attempt, text })));
    this.#trace.tokens(tokens);
    this.#deltasInFlight += 1;
    void write
      .then(
        () => this.#ctx.metrics.tokensAppended.inc(tokens),
        () => undefined,
      )
      .finally(() => {
        this.#deltasInFlight -= 1;
        if (!this.#stopReason) this.#scheduleFlush();
      });
    // A refusal already stopped the run; a store failure must stop it too, or a later delta would
    // take this one's offset and its text would be lost.
    write.catch((error: unknown) => {
      if (!(error instanceof RunStopped)) this.stop("storeFailed");
    });
    return write;
  }

  /** Appends after every earlier write, in order; a refusal stops the run. */
  #write(entries: readonly EntryBody[]): Promise<void> {
    const pendingDelta = this.#pending.length > 0 && entries[0]?.type !== "delta";
    const before = pendingDelta ? this.#flush() : this.#writes;
    const write = before.then(() => this.#appendTraced(entries));
    // Later writes chain on this one and fail with it: no entry may take the offset of a failed one.
    this.#writes = write;
    write.catch(() => undefined);
    return write;
  }

  /** {@link #appendRepairing} inside its span, when it has one (the first delta of a call, and every other entry). */
  #appendTraced(entries: readonly EntryBody[]): Promise<void> {
    const span = this.#trace.appendStarted(entries, this.#nextOffset);
    const append = this.#appendRepairing(entries);
    if (span)
      append.then(
        () => this.#trace.appendEnded(span),
        (error: unknown) => this.#trace.appendEnded(span, error),
      );
    return append;
  }

  /**
   * Appends at the next offset. When the store has fewer entries than this run already wrote (a
   * failover dropped acknowledged appends), the run writes its lost entries again, identical and
   * at the same offsets, so readers who saw them see the same log, then retries.
   */
  async #appendRepairing(entries: readonly EntryBody[]): Promise<void> {
    const { metrics } = this.#ctx;
    for (let round = 0; ; round++) {
      const result = await this.#appendRetrying(this.#nextOffset, entries);
      metrics.appends.inc({ result: result.kind });
      const lost = result.kind === "offsetConflict" && round < 5 ? this.#lostSince(result.lastOffset) : undefined;
      if (result.kind !== "offsetConflict" || !lost) {
        this.#afterAppend(result, entries);
        return;
      }
      this.#say("warn", { from: result.lastOffset + 1, entries: lost.length }, "the store lost entries this run wrote; writing them again");
      metrics.repairs.inc(lost.length);
      const repaired = await this.#appendRetrying(result.lastOffset + 1, lost);
      if (repaired.kind !== "appended" && repaired.kind !== "duplicate") {
        this.#afterAppend(repaired, lost);
        return;
      }
    }
  }

  /**
   * One append, tried again while the store does not answer (a failover takes seconds). Appends
   * are idempotent, so a retry after a lost reply is a `duplicate`, never a second copy. Gives up
   * after a lease length: by then another worker may own the answer.
   */
  async #appendRetrying(offset: number, entries: readonly EntryBody[]): Promise<AppendResult> {
    const giveUpAt = Date.now() + this.#ctx.leaseMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#ctx.engine.append(this.#claim.id, this.#claim.fence, offset, entries);
      } catch (error) {
        if (error instanceof RangeError || Date.now() >= giveUpAt || this.#abort.signal.aborted) throw error;
        this.#say("warn", { err: error, attempt }, "append failed; trying again");
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
  }

  /** This run's own entries after `lastOffset`, when it wrote every one of them. */
  #lostSince(lastOffset: number): EntryBody[] | undefined {
    if (lastOffset >= this.#nextOffset - 1) return undefined;
    const lost: EntryBody[] = [];
    for (let offset = lastOffset + 1; offset < this.#nextOffset; offset++) {
      const entry = this.#written.get(offset);
      if (!entry) return undefined;
      lost.push(entry);
    }
    return lost;
  }

  #afterAppend(result: AppendResult, entries: readonly EntryBody[]): void {
    switch (result.kind) {
      case "appended":
      case "duplicate":
        entries.forEach((entry, i) => this.#written.set(result.nextOffset - entries.length + i, entry));
        this.#nextOffset = result.nextOffset;
        return;
      case "closed":
        this.#say("info", undefined, "log closed by another writer (cancelled)");
        this.stop("closed");
        throw new RunStopped("closed");
      default:
        this.#say("warn", { result }, "append refused: lease lost");
        this.stop("leaseLost");
        throw new RunStopped("leaseLost");
    }
  }
}

/**
 * How long until one of `routes`' breakers lets a call through, at most `budgetMs`, and a wait for
 * it: the rest of the shortest cooldown, or a trial call's end (whose outcome may close its
 * breaker). `undefined` when none would within the budget.
 */
function breakersLetThrough(
  routes: readonly ModelRoute[],
  budgetMs: number,
): { readonly ms: number; until(signal: AbortSignal): Promise<void> } | undefined {
  let soonest = Infinity;
  const trials: Promise<void>[] = [];
  for (const { breaker } of routes) {
    const ms = breaker.msUntilTrial();
    if (ms === undefined) trials.push(breaker.trialEnded());
    else soonest = Math.min(soonest, ms);
  }
  if (budgetMs <= 0 || (trials.length === 0 && soonest > budgetMs)) return undefined;
  const ms = Math.max(0, Math.min(soonest, budgetMs));
  return {
    ms,
    until: (signal) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) return resolve(); // stopped while the `retrying` entry was written
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
        for (const trial of trials) void trial.then(done);
      }),
  };
}
