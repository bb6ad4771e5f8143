import { TRACING_ENV } from "../../src/observability/tracing-config.ts";
import type { OtlpCollector, ReceivedSpan } from "./otlp-collector.ts";

/**
 * The OTEL_* environment of a Lifeline process in a test: every variable Lifeline reads emptied
 * (an empty value is an unset one), so the runner's own environment cannot turn tracing on, then
 * `set`.
 */
export function otelEnv(set: Record<string, string> = {}): Record<string, string> {
  return { ...Object.fromEntries(TRACING_ENV.map((name) => [name, ""])), ...set };
}

/** Tracing on, exporting to `collector`; a short batch delay so spans leave while the test runs. */
export function tracedEnv(collector: OtlpCollector, set: Record<string, string> = {}): Record<string, string> {
  return otelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: "50", ...set });
}

/** The spans the collector received for one answer. */
export function spansOf(collector: OtlpCollector, generationId: string): ReceivedSpan[] {
  return collector.spans.filter((span) => span.attributes["lifeline.generation_id"] === generationId);
}

/** The one span named `name` among `spans` that matches `where`; fails when there is not exactly one. */
export function theSpan(spans: readonly ReceivedSpan[], name: string, where: (span: ReceivedSpan) => boolean = () => true): ReceivedSpan {
  const found = spans.filter((span) => span.name === name && where(span));
  if (found.length !== 1) {
    const seen = spans.map((s) => `${s.name} ${JSON.stringify(s.attributes)}`).join("\n  ");
    throw new Error(`expected one ${name} span, found ${found.length} among:\n  ${seen}`);
  }
  return found[0]!;
}
