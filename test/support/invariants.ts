import { expect } from "vitest";
import { isTerminal, type Entry } from "../../src/core/entries.ts";
import { TextFold } from "../../src/core/fold.ts";

/**
 * The invariant of every failure test: offsets run 1, 2, 3 … with no gap and no repeat, exactly
 * one terminal entry ends the log, and the folded text is `expectedText` byte for byte.
 */
export function expectExactAnswer(entries: readonly Entry[], expectedText: string, terminal = "completed"): void {
  expect(entries.map((e) => e.offset)).toEqual(entries.map((_, i) => i + 1));
  const terminals = entries.filter(isTerminal);
  expect(terminals.map((e) => e.type)).toEqual([terminal]);
  expect(entries[entries.length - 1]?.type).toBe(terminal);
  const fold = new TextFold();
  for (const entry of entries) fold.apply(entry);
  expect(fold.text).toBe(expectedText);
}
