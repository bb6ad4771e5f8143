import { afterAll, beforeEach } from "vitest";

/**
 * Counts the tests of this file by outcome and prints the count when the file ends, so a CI log
 * shows how much of a public conformance suite passed on each engine.
 */
export function reportConformanceCount(label: string): void {
  const count = { passed: 0, failed: 0, skipped: 0 };
  beforeEach((ctx) => {
    ctx.onTestFinished(({ task }) => {
      const state = task.result?.state;
      if (state === "pass") count.passed += 1;
      else if (state === "fail") count.failed += 1;
      else count.skipped += 1;
    });
  });
  afterAll(() => {
    const total = count.passed + count.failed;
    console.log(`${label}: ${count.passed} of ${total} passed, ${count.failed} failed (the suite skips its 6 opt-in subscription tests)`);
  });
}
