import { SpanKind } from "@opentelemetry/api";
import { LifelineError } from "../core/errors.ts";
import { GENERATION_ID_ATTRIBUTE, contextOf, failSpan, lifelineTracer, traceparentOf } from "../observability/tracing.ts";

/**
 * Runs a start of a generation inside the `lifeline.create` span (decision 040) when tracing is on,
 * and gives `start` the span's `traceparent` to keep in the `created` entry: the worker's spans and
 * every delivery of the answer join it from there. The span's parent is the client's `traceparent`
 * header when it names a valid one. With tracing off, `start` runs as it is, given nothing.
 */
export async function traceCreate<T extends { readonly id: string; readonly replayed: boolean }>(
  model: string,
  clientTraceparent: unknown,
  start: (traceparent: string | undefined) => Promise<T>,
): Promise<T> {
  const tracer = lifelineTracer();
  if (!tracer) return start(undefined);
  const span = tracer.startSpan(
    "lifeline.create",
    { kind: SpanKind.PRODUCER, attributes: { "lifeline.model": model } },
    contextOf(clientTraceparent),
  );
  try {
    const started = await start(traceparentOf(span));
    span.setAttribute(GENERATION_ID_ATTRIBUTE, started.id);
    // A replayed Idempotency-Key names a log an earlier create span started: that one is its parent.
    span.setAttribute("lifeline.replayed", started.replayed);
    return started;
  } catch (error) {
    failSpan(span, error instanceof LifelineError ? error.code : "internal", (error as Error).message);
    throw error;
  } finally {
    span.end();
  }
}
