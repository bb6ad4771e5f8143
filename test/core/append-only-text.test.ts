import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AppendOnlyText } from "../../src/core/append-only-text.ts";
import type { Entry } from "../../src/core/entries.ts";
import { TextFold } from "../../src/core/fold.ts";

const AT = "2026-11-30T00:00:00.000Z";

function created(): Entry {
  return { offset: 1, type: "created", at: AT, attempt: 0, request: { model: "sim", messages: [{ role: "user", content: "hi" }] } };
}

/** A log of entries after `created`: strings are deltas, numbers are rewinds to that offset. */
function log(...steps: (string | number)[]): Entry[] {
  const entries = [created()];
  for (const step of steps) {
    const offset = entries.length + 1;
    entries.push(
      typeof step === "string"
        ? { offset, type: "delta", at: AT, attempt: 1, text: step }
        : { offset, type: "rewind", at: AT, attempt: 2, toOffset: step },
    );
  }
  return entries;
}

function appends(view: AppendOnlyText, entries: readonly Entry[]): (string | "diverged")[] {
  return entries.map((entry) => {
    const step = view.apply(entry);
    return step.kind === "diverged" ? "diverged" : step.text;
  });
}

describe("AppendOnlyText", () => {
  it("passes each delta through while nothing moved back", () => {
    expect(appends(new AppendOnlyText(), log("Hel", "lo", " world"))).toEqual(["", "Hel", "lo", " world"]);
  });

  it("after a rewind, sends nothing until the text passes what was shown, then only what is new", () => {
    const view = new AppendOnlyText();
    expect(appends(view, log("Hello", " wor", 1, "Hel", "lo w", "orld", "!"))).toEqual(["", "Hello", " wor", "", "", "", "ld", "!"]);
    expect(view.shown).toBe("Hello world!");
  });

  it("diverges for good when the text written again differs from what was shown", () => {
    const view = new AppendOnlyText();
    expect(appends(view, log("Hello", 1, "Help", "!"))).toEqual(["", "Hello", "", "diverged", "diverged"]);
    expect(view.diverged).toBe(true);
    expect(view.shown).toBe("Hello");
  });

  it("after a reset, the replayed log adds only what passes what was shown", () => {
    const view = new AppendOnlyText();
    appends(view, log("ab", "cd"));
    view.reset();
    expect(appends(view, log("abc", "def"))).toEqual(["", "", "ef"]);
    expect(view.shown).toBe("abcdef");
  });

  it("always shows a prefix of the log's text, or says it diverged when the text stops beginning with what was shown", () => {
    const step = fc.oneof(fc.string({ unit: fc.constantFrom("a", "b"), maxLength: 4 }), fc.constant<"rewind">("rewind"));
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const view = new AppendOnlyText();
        const fold = new TextFold();
        let everDiverged = false;
        let sent = "";
        let previousShown = "";
        for (const entry of log(...steps.map((s) => (s === "rewind" ? 1 : s)))) {
          fold.apply(entry);
          const result = view.apply(entry);
          // The reference: the text diverged once some text of the log did not begin with what had been shown.
          if (!fold.text.startsWith(previousShown) && !previousShown.startsWith(fold.text)) everDiverged = true;
          if (everDiverged) {
            expect(result.kind).toBe("diverged");
            return;
          }
          expect(result.kind).toBe("append");
          if (result.kind === "append") sent += result.text;
          expect(sent).toBe(view.shown);
          const longer = fold.text.length > previousShown.length ? fold.text : previousShown;
          expect(view.shown).toBe(longer);
          previousShown = view.shown;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
