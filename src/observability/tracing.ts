import {
  DiagLogLevel,
  ROOT_CONTEXT,
  SpanStatusCode,
  TraceFlags,
  diag,
  trace,
  type Context,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import { formatTraceparent, parseTraceparent } from "./trace-context.ts";
import type { SamplerSetting, TracingSettings } from "./tracing-config.ts";

/**
 * OpenTelemetry traces of answers (decision 040). Off unless the `OTEL_*` variables ask for it:
 * then {@link startTracing} starts the SDK once per process, and {@link lifelineTracer} gives the
 * tracer the gateway and the worker make their spans with. While it is off that returns
 * `undefined` and the call sites skip all tracing work, so an untraced answer allocates nothing
 * for it; no SDK module is even loaded.
 */

/** The attribute every span of an answer carries: how gateway and worker spans are found together. */
export const GENERATION_ID_ATTRIBUTE = "lifeline.generation_id";

let tracer: Tracer | undefined;

/** The tracer of this process, or `undefined` while tracing is off. */
export function lifelineTracer(): Tracer | undefined {
  return tracer;
}

/** A started tracing SDK. */
export interface Tracing {
  /** Exports every span ended so far. */
  flush(): Promise<void>;
  /** Exports what is still queued and stops; spans made after it are not recorded. */
  shutdown(): Promise<void>;
}

/** How often the SDK's complaints (an export that failed, a full queue) are passed on at most. */
const COMPLAINT_INTERVAL_MS = 60_000;

/**
 * Starts the SDK with an OTLP/HTTP protobuf exporter behind a batch processor, and registers it
 * as the process's tracer provider. Loaded on demand, so a process without tracing never loads it.
 * `warn` hears the SDK's warnings and errors (a collector that does not answer), at most one a
 * minute: spans that cannot be sent are dropped, and the answers never wait for them.
 */
export async function startTracing(settings: TracingSettings, warn: (message: string) => void = () => undefined): Promise<Tracing> {
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-proto"),
    import("@opentelemetry/resources"),
  ]);
  const exporter = new OTLPTraceExporter({
    url: settings.url,
    headers: { ...settings.headers },
    timeoutMillis: settings.exportTimeoutMs,
    // The exporter's enum has exactly these two values.
    compression: settings.compression as NonNullable<NonNullable<ConstructorParameters<typeof OTLPTraceExporter>[0]>["compression"]>,
  });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ ...settings.resourceAttributes, "service.name": settings.serviceName }),
    sampler: await samplerOf(settings.sampler),
    spanProcessors: [new BatchSpanProcessor(exporter, settings.batch)],
  });
  provider.register();
  let quietUntil = 0;
  let held = 0;
  const complain = (message: string): void => {
    const now = Date.now();
    if (now < quietUntil) {
      held += 1;
      return;
    }
    const text = errorMessageOf(message);
    warn(held > 0 ? `${text} (and ${held} more since the last)` : text);
    quietUntil = now + COMPLAINT_INTERVAL_MS;
    held = 0;
  };
  const ignore = (): void => undefined;
  diag.setLogger({ error: complain, warn: complain, info: ignore, debug: ignore, verbose: ignore }, DiagLogLevel.WARN);
  tracer = provider.getTracer("lifeline");
  return {
    flush: () => provider.forceFlush(),
    shutdown: async () => {
      tracer = undefined;
      await provider.shutdown();
    },
  };
}

/** The SDK hands an exception over as its JSON: its `message` is what a person needs. */
function errorMessageOf(text: string): string {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === "object" && "message" in parsed && typeof parsed.message === "string") return parsed.message;
  } catch {
    // Not JSON: the words themselves.
  }
  return text;
}

async function samplerOf(setting: SamplerSetting) {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = await import("@opentelemetry/sdk-trace-node");
  switch (setting.kind) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(setting.ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(setting.ratio) });
  }
}

/**
 * The context whose parent is the span `traceparent` names (a remote one: another process wrote
 * it), or the root context when it names none: a missing or malformed value starts a new trace.
 */
export function contextOf(traceparent: unknown): Context {
  const parent = parseTraceparent(traceparent);
  if (!parent) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: parent.flags & TraceFlags.SAMPLED,
    isRemote: true,
  });
}

/** `span` as a `traceparent` for the log, or `undefined` for a span that records nothing. */
export function traceparentOf(span: Span): string | undefined {
  const context = span.spanContext();
  if (!trace.isSpanContextValid(context)) return undefined;
  return formatTraceparent({ traceId: context.traceId, spanId: context.spanId, flags: context.traceFlags });
}

/** Marks `span` failed with a stable code (the error registry's, or a provider's failure kind). */
export function failSpan(span: Span, code: string, message?: string): void {
  span.setAttribute("lifeline.error_code", code);
  span.setStatus(message === undefined ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.ERROR, message });
}
