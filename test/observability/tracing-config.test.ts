import { describe, expect, it } from "vitest";
import { TracingConfigError, readTracingSettings } from "../../src/observability/tracing-config.ts";

const read = (env: Record<string, string>) => readTracingSettings(env, "lifeline-test");
const problemsOf = (env: Record<string, string>): readonly string[] => {
  try {
    read(env);
  } catch (error) {
    if (error instanceof TracingConfigError) return error.problems;
    throw error;
  }
  throw new Error("no TracingConfigError");
};

describe("the OTEL_* settings", () => {
  it.each([
    ["nothing set", {}],
    ["only a service name", { OTEL_SERVICE_NAME: "api" }],
    ["only a sampler", { OTEL_TRACES_SAMPLER: "always_on" }],
    ["an endpoint, but the SDK disabled", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "TRUE" }],
    ["an endpoint, but the exporter none", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "none" }],
    ["the exporter otlp, but the SDK disabled", { OTEL_TRACES_EXPORTER: "otlp", OTEL_SDK_DISABLED: "true" }],
    ["empty values", { OTEL_TRACES_EXPORTER: "", OTEL_EXPORTER_OTLP_ENDPOINT: "" }],
  ])("leave tracing off with %s", (_, env) => {
    expect(read(env)).toBeUndefined();
  });

  it("turn tracing on with OTEL_TRACES_EXPORTER=otlp alone, to the default local collector", () => {
    expect(read({ OTEL_TRACES_EXPORTER: "otlp" })).toMatchObject({
      url: "http://localhost:4318/v1/traces",
      serviceName: "lifeline-test",
      sampler: { kind: "parentbased_always_on" },
      exportTimeoutMs: 10_000,
      compression: "none",
      batch: { scheduledDelayMillis: 5000, exportTimeoutMillis: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512 },
    });
  });

  it("append /v1/traces to the base endpoint and take the traces endpoint as it is", () => {
    expect(read({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://c.example:4318/otel/" })?.url).toBe("https://c.example:4318/otel/v1/traces");
    expect(read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:1", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:2/custom/path" })?.url).toBe(
      "http://b:2/custom/path",
    );
  });

  it("read the service name, resource attributes, headers, sampler, timeouts and batch sizes", () => {
    const settings = read({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_SERVICE_NAME: "edge-gateway",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod,team=answers%20and%20more",
      OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20abc,x-a=1",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-a=2",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
      OTEL_EXPORTER_OTLP_TIMEOUT: "3000",
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: "gzip",
      OTEL_BSP_SCHEDULE_DELAY: "0",
      OTEL_BSP_MAX_QUEUE_SIZE: "100",
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "100",
    });
    expect(settings).toMatchObject({
      serviceName: "edge-gateway",
      resourceAttributes: { "deployment.environment": "prod", team: "answers and more" },
      headers: { authorization: "Bearer abc", "x-a": "2" },
      sampler: { kind: "parentbased_traceidratio", ratio: 0.25 },
      exportTimeoutMs: 3000,
      compression: "gzip",
      batch: { scheduledDelayMillis: 0, maxQueueSize: 100, maxExportBatchSize: 100 },
    });
    expect(Object.isFrozen(settings)).toBe(true);
  });

  it("list every bad value in one error, whether or not tracing is on", () => {
    expect(
      problemsOf({
        OTEL_SDK_DISABLED: "1",
        OTEL_TRACES_EXPORTER: "jaeger",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "ftp://c/v1/traces",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_COMPRESSION: "zstd",
        OTEL_EXPORTER_OTLP_HEADERS: "novalue",
        OTEL_EXPORTER_OTLP_TIMEOUT: "-5",
        OTEL_BSP_SCHEDULE_DELAY: "soon",
        OTEL_TRACES_SAMPLER: "sometimes",
        OTEL_RESOURCE_ATTRIBUTES: "=x",
      }),
    ).toEqual([
      'OTEL_SDK_DISABLED must be true or false, not "1"',
      'OTEL_TRACES_EXPORTER must be otlp or none (Lifeline exports traces over OTLP only), not "jaeger"',
      'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http:// or https:// URL, not "ftp://c/v1/traces"',
      'OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL must be http/protobuf (the one Lifeline speaks), not "http/json"',
      'OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION must be gzip or none, not "zstd"',
      'OTEL_EXPORTER_OTLP_HEADERS must be a list of key=value pairs separated by commas, not "novalue"',
      'OTEL_EXPORTER_OTLP_TIMEOUT must be a whole number of at least 1, not "-5"',
      'OTEL_BSP_SCHEDULE_DELAY must be a whole number of at least 0, not "soon"',
      'OTEL_TRACES_SAMPLER must be one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio, not "sometimes"',
      'OTEL_RESOURCE_ATTRIBUTES must be a list of key=value pairs separated by commas, not "=x"',
    ]);
  });

  it.each([
    [{ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1.5" }, /OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: "bad header=1" }, /"bad header" is not a header name/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: "x=%0Aevil" }, /the value of "x" holds a line break/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: "x=%E0%A4%A" }, /the value of "x" is not percent-encoded correctly/],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: "10", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "20" }, /must not exceed OTEL_BSP_MAX_QUEUE_SIZE/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" }, /OTEL_EXPORTER_OTLP_ENDPOINT must be an http:\/\/ or https:\/\/ URL/],
  ])("refuse %o", (env, message) => {
    expect(() => read(env)).toThrow(message);
  });
});
