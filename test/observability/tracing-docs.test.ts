import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { TRACING_ENV } from "../../src/observability/tracing-config.ts";
import { tableUnder, unquote } from "../support/markdown-table.ts";

/* The settings table of docs/tracing.md and README's OTEL_* table mirror the variables src/observability/tracing-config.ts reads. */

const docs = readFileSync(new URL("../../docs/tracing.md", import.meta.url), "utf8");
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

describe("the documented OTEL_* variables", () => {
  it("are exactly those the settings read, in docs/tracing.md", () => {
    const names = tableUnder(docs, "## Settings").map(([name = ""]) => unquote(name));
    expect(names.sort()).toEqual([...TRACING_ENV].sort());
  });

  it("are each named in the README's traces table", () => {
    const names = tableUnder(readme, "### Traces").map(([name = ""]) => unquote(name));
    for (const name of names) expect(TRACING_ENV).toContain(name);
    expect(names).toEqual(
      expect.arrayContaining(["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME"]),
    );
  });
});
