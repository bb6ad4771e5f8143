import { canonicalJson } from "../core/canonical.ts";
import { isTerminal, type EntryBody } from "../core/entries.ts";
import type { AppendResult } from "./port.ts";

/** What an adapter knows about a log when it decides an append, inside its atomic step. */
export interface LogState {
  readonly lastOffset: number;
  readonly terminal: boolean;
  readonly fence: number;
}

/**
 * Decides an append, the same way in every adapter (the Redis adapter mirrors it in Lua).
 * `storedBody(offset)` returns the canonical JSON of the entry standing at `offset`.
 */
export function decideAppend(
  state: LogState,
  fence: number,
  expectedOffset: number,
  entries: readonly EntryBody[],
  storedBody: (offset: number) => string | undefined,
): AppendResult {
  assertWellFormedBatch(entries);
  if (expectedOffset <= state.lastOffset) {
    const isResend = entries.every((entry, i) => storedBody(expectedOffset + i) === canonicalJson(entry));
    if (isResend) return { kind: "duplicate", nextOffset: expectedOffset + entries.length };
  }
  if (state.terminal) return { kind: "closed", lastOffset: state.lastOffset };
  if (fence !== state.fence) return { kind: "staleFence", fence: state.fence };
  if (expectedOffset !== state.lastOffset + 1) return { kind: "offsetConflict", lastOffset: state.lastOffset };
  return { kind: "appended", nextOffset: expectedOffset + entries.length };
}

/** A batch is not empty, and a terminal entry can only be its last. */
export function assertWellFormedBatch(entries: readonly EntryBody[]): void {
  if (entries.length === 0) throw new RangeError("append needs at least one entry");
  entries.forEach((entry, i) => {
    if (isTerminal(entry) && i !== entries.length - 1) {
      throw new RangeError("a terminal entry must be the last of its batch");
    }
    if (entry.type === "created") throw new RangeError("created entries are written by create()");
  });
}

export function endsWithTerminal(entries: readonly EntryBody[]): boolean {
  const last = entries[entries.length - 1];
  return last !== undefined && isTerminal(last);
}
