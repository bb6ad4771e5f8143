/**
 * The OpenTelemetry environment variables Lifeline reads (decision 040), validated once at start.
 * Tracing is off unless they ask for it: `OTEL_TRACES_EXPORTER=otlp`, or an OTLP endpoint set;
 * `OTEL_SDK_DISABLED=true` wins over both. Names, defaults and meanings follow the OpenTelemetry
 * environment-variable specification; where the spec would quietly ignore a bad value, Lifeline
 * stops with an error naming it instead: a typo in a disable switch or an endpoint should not go
 * unseen until someone looks for traces that were never sent.
 */

/** A bad `OTEL_*` value: one message listing every problem. */
export class TracingConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid OpenTelemetry settings: ${problems.join("; ")}`);
    this.name = "TracingConfigError";
  }
}

export type SamplerSetting =
  | { readonly kind: "always_on" | "always_off" | "parentbased_always_on" | "parentbased_always_off" }
  | { readonly kind: "traceidratio" | "parentbased_traceidratio"; readonly ratio: number };

/** What the SDK is started with when tracing is on. */
export interface TracingSettings {
  /** The OTLP/HTTP protobuf endpoint spans are posted to. */
  readonly url: string;
  /** `OTEL_SERVICE_NAME`, or the process's default (`lifeline`, `lifeline-gateway`, `lifeline-worker`). */
  readonly serviceName: string;
  /** From `OTEL_RESOURCE_ATTRIBUTES` (`service.name` there yields to `OTEL_SERVICE_NAME`). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly sampler: SamplerSetting;
  /** `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`, ms. @defaultValue 10000 */
  readonly exportTimeoutMs: number;
  readonly compression: "gzip" | "none";
  /** `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`, parsed. */
  readonly headers: Readonly<Record<string, string>>;
  /** `OTEL_BSP_*`: the batch span processor. */
  readonly batch: {
    readonly scheduledDelayMillis: number;
    readonly exportTimeoutMillis: number;
    readonly maxQueueSize: number;
    readonly maxExportBatchSize: number;
  };
}

/** Every variable read here, for the docs and the tests. */
export const TRACING_ENV = [
  "OTEL_SDK_DISABLED",
  "OTEL_TRACES_EXPORTER",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
  "OTEL_EXPORTER_OTLP_PROTOCOL",
  "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
  "OTEL_EXPORTER_OTLP_TIMEOUT",
  "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
  "OTEL_EXPORTER_OTLP_COMPRESSION",
  "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
  "OTEL_SERVICE_NAME",
  "OTEL_RESOURCE_ATTRIBUTES",
  "OTEL_TRACES_SAMPLER",
  "OTEL_TRACES_SAMPLER_ARG",
  "OTEL_BSP_SCHEDULE_DELAY",
  "OTEL_BSP_EXPORT_TIMEOUT",
  "OTEL_BSP_MAX_QUEUE_SIZE",
  "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
] as const;

const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"];
const DEFAULT_ENDPOINT = "http://localhost:4318";

/**
 * The tracing settings `env` asks for, or `undefined` when tracing is off. Throws
 * {@link TracingConfigError} listing every bad value, also when tracing is off (a bad value is a
 * mistake whether or not it takes effect now).
 */
export function readTracingSettings(env: NodeJS.ProcessEnv, defaultServiceName: string): TracingSettings | undefined {
  const problems: string[] = [];
  const get = (name: (typeof TRACING_ENV)[number]): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };

  const disabledText = get("OTEL_SDK_DISABLED")?.toLowerCase();
  if (disabledText !== undefined && disabledText !== "true" && disabledText !== "false")
    problems.push(`OTEL_SDK_DISABLED must be true or false, not "${get("OTEL_SDK_DISABLED")}"`);
  const exporter = get("OTEL_TRACES_EXPORTER");
  if (exporter !== undefined && exporter !== "otlp" && exporter !== "none")
    problems.push(`OTEL_TRACES_EXPORTER must be otlp or none (Lifeline exports traces over OTLP only), not "${exporter}"`);

  const tracesEndpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT");
  for (const [name, value] of [
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tracesEndpoint],
    ["OTEL_EXPORTER_OTLP_ENDPOINT", endpoint],
  ] as const) {
    if (value !== undefined && !isHttpUrl(value)) problems.push(`${name} must be an http:// or https:// URL, not "${value}"`);
  }
  const protocol = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? get("OTEL_EXPORTER_OTLP_PROTOCOL");
  if (protocol !== undefined && protocol !== "http/protobuf")
    problems.push(`OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL must be http/protobuf (the one Lifeline speaks), not "${protocol}"`);
  const compression = get("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION") ?? get("OTEL_EXPORTER_OTLP_COMPRESSION") ?? "none";
  if (compression !== "gzip" && compression !== "none")
    problems.push(`OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION must be gzip or none, not "${compression}"`);
  const headers = {
    ...headerList(get("OTEL_EXPORTER_OTLP_HEADERS"), "OTEL_EXPORTER_OTLP_HEADERS", problems),
    ...headerList(get("OTEL_EXPORTER_OTLP_TRACES_HEADERS"), "OTEL_EXPORTER_OTLP_TRACES_HEADERS", problems),
  };
  const number = (name: (typeof TRACING_ENV)[number], fallback: number, min: number): number => {
    const text = get(name);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
      problems.push(`${name} must be a whole number of at least ${min}, not "${text}"`);
      return fallback;
    }
    return n;
  };
  const exportTimeoutMs = get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
    ? number("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 10_000, 1)
    : number("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, 1);
  const batch = {
    scheduledDelayMillis: number("OTEL_BSP_SCHEDULE_DELAY", 5000, 0),
    exportTimeoutMillis: number("OTEL_BSP_EXPORT_TIMEOUT", 30_000, 1),
    maxQueueSize: number("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1),
    maxExportBatchSize: number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1),
  };
  if (batch.maxExportBatchSize > batch.maxQueueSize)
    problems.push(
      `OTEL_BSP_MAX_EXPORT_BATCH_SIZE (${batch.maxExportBatchSize}) must not exceed OTEL_BSP_MAX_QUEUE_SIZE (${batch.maxQueueSize})`,
    );

  const sampler = samplerOf(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"), problems);
  const resourceAttributes = resourceList(get("OTEL_RESOURCE_ATTRIBUTES"), problems);
  const serviceName = get("OTEL_SERVICE_NAME") ?? defaultServiceName;

  if (problems.length > 0) throw new TracingConfigError(problems);
  const asked = exporter === "otlp" || (exporter === undefined && (endpoint !== undefined || tracesEndpoint !== undefined));
  if (disabledText === "true" || !asked) return undefined;
  return Object.freeze({
    url: tracesEndpoint ?? `${(endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "")}/v1/traces`,
    serviceName,
    resourceAttributes: Object.freeze(resourceAttributes),
    sampler,
    exportTimeoutMs,
    compression: compression === "gzip" ? "gzip" : "none",
    headers: Object.freeze(headers),
    batch: Object.freeze(batch),
  });
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.host !== "";
  } catch {
    return false;
  }
}

function samplerOf(name: string | undefined, arg: string | undefined, problems: string[]): SamplerSetting {
  const kind = name ?? "parentbased_always_on";
  if (!SAMPLERS.includes(kind)) {
    problems.push(`OTEL_TRACES_SAMPLER must be one of ${SAMPLERS.join(", ")}, not "${kind}"`);
    return { kind: "parentbased_always_on" };
  }
  if (kind !== "traceidratio" && kind !== "parentbased_traceidratio") return { kind } as SamplerSetting;
  const ratio = arg === undefined ? 1 : Number(arg);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    problems.push(`OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1 for ${kind}, not "${arg}"`);
    return { kind, ratio: 1 };
  }
  return { kind, ratio };
}

/** `key=value,key=value` with percent-encoded values (the W3C Baggage form the spec uses for both lists). */
function pairs(text: string | undefined, name: string, problems: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  if (text === undefined) return result;
  for (const item of text.split(",")) {
    const at = item.indexOf("=");
    const key = item.slice(0, at).trim();
    let value: string;
    try {
      value = decodeURIComponent(item.slice(at + 1).trim());
    } catch {
      value = "";
      problems.push(`${name}: the value of "${key}" is not percent-encoded correctly`);
    }
    if (at <= 0 || key === "") problems.push(`${name} must be a list of key=value pairs separated by commas, not "${text}"`);
    else result[key] = value;
  }
  return result;
}

function headerList(text: string | undefined, name: string, problems: string[]): Record<string, string> {
  const headers = pairs(text, name, problems);
  for (const [key, value] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key)) problems.push(`${name}: "${key}" is not a header name`);
    if (/[\r\n\0]/.test(value)) problems.push(`${name}: the value of "${key}" holds a line break`);
  }
  return headers;
}

function resourceList(text: string | undefined, problems: string[]): Record<string, string> {
  return pairs(text, "OTEL_RESOURCE_ATTRIBUTES", problems);
}
