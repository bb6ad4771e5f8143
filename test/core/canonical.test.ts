import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../src/core/canonical.ts";

/** The general rule, written out: keys sorted at every level, undefined values left out. */
function sortedJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v === null || typeof v !== "object") return v;
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
    );
  };
  return JSON.stringify(sort(value));
}

describe("canonicalJson", () => {
  it("writes a delta exactly as the general rule does, whatever its text and key order", () => {
    const texts = ["", "plain", ' "quoted" \\ back', "line\nbreak\ttab", "emoji 🦙 and \u0000 nul", "\ud800 lone surrogate"];
    for (const text of texts) {
      for (const delta of [
        { type: "delta", attempt: 3, text },
        { text, attempt: 12, type: "delta" },
      ]) {
        expect(canonicalJson(delta)).toBe(sortedJson(delta));
        expect(JSON.parse(canonicalJson(delta))).toEqual(delta);
      }
    }
  });

  it("a delta with anything more or less than its three fields goes through the general rule", () => {
    for (const value of [
      { type: "delta", attempt: 1, text: "a", extra: { b: 1, a: 2 } },
      { type: "delta", attempt: 1 },
      { type: "delta", attempt: Number.NaN, text: "a" },
      { type: "delta", attempt: "1", text: "a" },
      { type: "completed", attempt: 1, usage: { promptTokens: 1, completionTokens: 2 }, finishReason: "stop" },
    ]) {
      expect(canonicalJson(value)).toBe(sortedJson(value));
    }
  });
});
