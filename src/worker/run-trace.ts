import { SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from "@opentelemetry/api";
import type { EntryBody } from "../core/entries.ts";
import type { Claim } from "../engine/port.ts";
import type { ModelRoute } from "../llm/resilience/plan.ts";
import { GENERATION_ID_ATTRIBUTE, contextOf, failSpan, lifelineTracer } from "../observability/tracing.ts";

/**
 * The spans of one run of an answer (decision 040): `lifeline.claim` from the claim to the end of
 * the run, a child of the gateway's create span (the `created` entry names it); under it one
 * `lifeline.model_call` per call (retries and fallbacks each their own, with the attempt, model,
 * provider, outcome and error code) and `lifeline.append` spans for the entries that tell the
 * story: `started`, `retrying`, `rewind`, the end, and the first delta of each call. The other
 * deltas are counted on their call's span, not traced one by one: a span per delta append would
 * be tens of thousands a second at full load, for no more insight than the counts give.
 */
export interface RunTrace {
  /** The log was read: the claim span starts, dated from the claim. */
  begin(traceparent: string | undefined): void;
  /** A call to `route` starts: the spans of its appends go under it. */
  callStarted(route: ModelRoute, routeIndex: number): void;
  /** The call ended: `completed`, `failed` (with the stable code), or `stopped` (not the model's doing). */
  callEnded(outcome: "completed" | "failed" | "stopped", code?: string, message?: string): void;
  /** `tokens` more tokens of the current call went to the log. */
  tokens(tokens: number): void;
  /** The span of an append of `entries` at `offset`, or `undefined` for one that is only counted. */
  appendStarted(entries: readonly EntryBody[], offset: number): Span | undefined;
  /** The append whose span `appendStarted` gave ended; `error` when it threw (a refusal, the store). */
  appendEnded(span: Span, error?: unknown): void;
  /** The run is over; `stopped` says why when it ended before its terminal entry. */
  end(stopped: string | undefined): void;
}

/** Tracing is off: every call does nothing, and a run allocates nothing for its trace. */
const NO_TRACE: RunTrace = {
  begin: () => undefined,
  callStarted: () => undefined,
  callEnded: () => undefined,
  tokens: () => undefined,
  appendStarted: () => undefined,
  appendEnded: () => undefined,
  end: () => undefined,
};

/** The trace of a run of `claim` by `worker`, begun now (the claim was just made). */
export function traceRun(claim: Claim, worker: string): RunTrace {
  const tracer = lifelineTracer();
  return tracer ? new TracedRun(tracer, claim, worker) : NO_TRACE;
}

class TracedRun implements RunTrace {
  readonly #tracer: Tracer;
  readonly #claim: Claim;
  readonly #worker: string;
  readonly #claimedAt = Date.now();
  #run: Span | undefined;
  #runContext: Context | undefined;
  #call: { span: Span; context: Context; deltas: number; tokens: number } | undefined;
  #calls = 0;
  /** The terminal entry this run wrote, once it did. */
  #terminal: string | undefined;

  constructor(tracer: Tracer, claim: Claim, worker: string) {
    this.#tracer = tracer;
    this.#claim = claim;
    this.#worker = worker;
  }

  begin(traceparent: string | undefined): void {
    const span = this.#tracer.startSpan(
      "lifeline.claim",
      {
        kind: SpanKind.CONSUMER,
        startTime: this.#claimedAt,
        attributes: {
          [GENERATION_ID_ATTRIBUTE]: this.#claim.id,
          "lifeline.attempt": this.#claim.fence,
          "lifeline.takeover": this.#claim.takeover,
          "lifeline.worker": this.#worker,
        },
      },
      contextOf(traceparent),
    );
    this.#run = span;
    this.#runContext = trace.setSpan(contextOf(traceparent), span);
  }

  callStarted(route: ModelRoute, routeIndex: number): void {
    if (!this.#runContext) return;
    this.#calls += 1;
    const span = this.#tracer.startSpan(
      "lifeline.model_call",
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [GENERATION_ID_ATTRIBUTE]: this.#claim.id,
          "lifeline.attempt": this.#claim.fence,
          "lifeline.call": this.#calls,
          "lifeline.model": route.name,
          "lifeline.provider": route.provider.name,
          "lifeline.route_index": routeIndex,
          "lifeline.fallback": routeIndex > 0,
        },
      },
      this.#runContext,
    );
    this.#call = { span, context: trace.setSpan(this.#runContext, span), deltas: 0, tokens: 0 };
  }

  callEnded(outcome: "completed" | "failed" | "stopped", code?: string, message?: string): void {
    const call = this.#call;
    if (!call) return;
    this.#call = undefined;
    call.span.setAttributes({ "lifeline.outcome": outcome, "lifeline.delta_appends": call.deltas, "lifeline.tokens": call.tokens });
    if (outcome === "failed") failSpan(call.span, code ?? "model_error", message);
    call.span.end();
  }

  tokens(tokens: number): void {
    if (this.#call) this.#call.tokens += tokens;
  }

  appendStarted(entries: readonly EntryBody[], offset: number): Span | undefined {
    const parent = this.#call?.context ?? this.#runContext;
    const first = entries[0];
    if (!parent || !first) return undefined;
    if (first.type === "delta" && this.#call && this.#call.deltas++ > 0) return undefined;
    const last = entries[entries.length - 1]!;
    if (last.type === "completed" || last.type === "failed") this.#terminal = last.type;
    return this.#tracer.startSpan(
      "lifeline.append",
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          [GENERATION_ID_ATTRIBUTE]: this.#claim.id,
          "lifeline.attempt": this.#claim.fence,
          "lifeline.offset": offset,
          "lifeline.entries": entries.length,
          "lifeline.entry_type": last.type,
          ...(last.type === "retrying" || last.type === "failed" ? { "lifeline.error_code": last.error.code } : {}),
        },
      },
      parent,
    );
  }

  appendEnded(span: Span, error?: unknown): void {
    if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
    span.end();
  }

  end(stopped: string | undefined): void {
    const run = this.#run;
    if (!run) return;
    this.#run = undefined;
    this.callEnded("stopped");
    run.setAttributes({ "lifeline.model_calls": this.#calls, "lifeline.outcome": this.#terminal ?? stopped ?? "no_entry" });
    if (this.#terminal === "failed") run.setStatus({ code: SpanStatusCode.ERROR });
    run.end();
  }
}
