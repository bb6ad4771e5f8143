import { SpanKind, type Span, type Tracer } from "@opentelemetry/api";
import type { Entry } from "../core/entries.ts";
import type { Engine } from "../engine/port.ts";
import { GENERATION_ID_ATTRIBUTE, contextOf, failSpan, lifelineTracer } from "../observability/tracing.ts";

/**
 * The `lifeline.deliver` span of one follow (decision 040): a transport giving an answer's log to
 * one client, from the follow's start to its end. Its parent is the create span the `created`
 * entry names, so deliveries on any gateway join the answer's trace. Entries and resets are
 * counted and set once at the end: no span, event or allocation per entry.
 */
export class DeliveryTrace {
  readonly #tracer: Tracer;
  readonly #id: string;
  readonly #transport: string;
  readonly #fromOffset: number;
  readonly #startedAt = Date.now();
  #span: Span | undefined;
  #entries = 0;
  #resets = 0;
  #ended: { readonly outcome: string; readonly at: number; readonly error?: unknown } | undefined;

  constructor(tracer: Tracer, engine: Engine, id: string, transport: string, fromOffset: number, firstPage?: readonly Entry[]) {
    this.#tracer = tracer;
    this.#id = id;
    this.#transport = transport;
    this.#fromOffset = fromOffset;
    const first = firstPage?.[0];
    if (first?.offset === 1) this.#open(first);
    // A follow resumed from a cursor has not read the `created` entry: one read of it finds the parent.
    else
      void engine.read(id, 0, 1).then(
        ([created]) => this.#open(created),
        () => this.#open(undefined),
      );
  }

  /** One more entry given to the transport. */
  delivered(): void {
    this.#entries += 1;
  }

  /** The follow sent `reset` and reads from offset 1 again. */
  reset(): void {
    this.#resets += 1;
  }

  /** The follow is over: `ended` (terminal entry given), `stopped`, `closed` (the client left), `gone`, `failed`. */
  end(outcome: string, error?: unknown): void {
    if (this.#ended) return;
    this.#ended = { outcome, at: Date.now(), ...(error === undefined ? {} : { error }) };
    this.#finish();
  }

  #open(created: Entry | undefined): void {
    const parent = created?.type === "created" ? created.traceparent : undefined;
    this.#span = this.#tracer.startSpan(
      "lifeline.deliver",
      {
        kind: SpanKind.SERVER,
        startTime: this.#startedAt,
        attributes: {
          [GENERATION_ID_ATTRIBUTE]: this.#id,
          "lifeline.transport": this.#transport,
          "lifeline.from_offset": this.#fromOffset,
        },
      },
      contextOf(parent),
    );
    this.#finish();
  }

  #finish(): void {
    const span = this.#span;
    const ended = this.#ended;
    if (!span || !ended) return;
    span.setAttributes({ "lifeline.entries": this.#entries, "lifeline.resets": this.#resets, "lifeline.outcome": ended.outcome });
    if (ended.outcome === "failed" || ended.outcome === "gone")
      failSpan(span, ended.outcome === "gone" ? "generation_not_found" : "engine_unavailable", (ended.error as Error | undefined)?.message);
    span.end(ended.at);
  }
}

/** The delivery span of a follow starting now, or `undefined` while tracing is off. */
export function traceDelivery(
  engine: Engine,
  id: string,
  transport: string,
  fromOffset: number,
  firstPage?: readonly Entry[],
): DeliveryTrace | undefined {
  const tracer = lifelineTracer();
  return tracer ? new DeliveryTrace(tracer, engine, id, transport, fromOffset, firstPage) : undefined;
}
