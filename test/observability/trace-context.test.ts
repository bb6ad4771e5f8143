import { describe, expect, it } from "vitest";
import { formatTraceparent, parseTraceparent } from "../../src/observability/trace-context.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

describe("the W3C traceparent", () => {
  it("reads a version 00 value and writes it back the same", () => {
    const value = `00-${TRACE}-${SPAN}-01`;
    expect(parseTraceparent(value)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
    expect(formatTraceparent(parseTraceparent(value)!)).toBe(value);
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)?.flags).toBe(0);
  });

  it("reads the first four fields of a later version, with or without more after a dash", () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01`)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
    expect(parseTraceparent(`cc-${TRACE}-${SPAN}-01-what-comes-later`)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
  });

  it.each([
    ["absent", undefined],
    ["not a string", 42],
    ["an array (a repeated header)", [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`]],
    ["empty", ""],
    ["garbage", "hello"],
    ["upper-case hex", `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ["an all-zero trace id", `00-${"0".repeat(32)}-${SPAN}-01`],
    ["an all-zero span id", `00-${TRACE}-${"0".repeat(16)}-01`],
    ["version ff", `ff-${TRACE}-${SPAN}-01`],
    ["version 00 with more fields", `00-${TRACE}-${SPAN}-01-00`],
    ["a short trace id", `00-${TRACE.slice(1)}-${SPAN}-01`],
    ["a line break", `00-${TRACE}-${SPAN}-01\n`],
    ["a later version without a dash after the flags", `01-${TRACE}-${SPAN}-01x`],
    ["too long", `01-${TRACE}-${SPAN}-01-${"a".repeat(600)}`],
  ])("names no parent when %s", (_, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });
});
