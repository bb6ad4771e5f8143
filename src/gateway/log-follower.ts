import { formatCursor, parseCursor, type Cursor } from "../core/cursor.ts";
import { isTerminal, type Entry } from "../core/entries.ts";
import { LifelineError } from "../core/errors.ts";
import { GENERATION_ID } from "../core/generation-id.ts";
import type { Engine } from "../engine/port.ts";
import type { Metrics } from "../observability/metrics.ts";

const READ_BATCH = 256;

/** Where a reader stands: the last entry it was given, and the attempt that wrote it when checked. */
export interface Position {
  readonly offset: number;
  readonly attempt: number | undefined;
}

export const START: Position = { offset: 0, attempt: undefined };

/** What a follower yields: an entry with its cursor, or `reset` (drop the text, the log follows from offset 1). */
export type Delivery = { readonly kind: "entry"; readonly entry: Entry; readonly cursor: string } | { readonly kind: "reset" };

/** The cursor a client gets for an entry: with the attempt on engines that replicate asynchronously. */
export function cursorFor(engine: Engine, entry: Entry): string {
  return engine.replicatesAsynchronously ? formatCursor(entry.offset, String(entry.attempt)) : formatCursor(entry.offset);
}

/**
 * Where to continue after `cursor`, or `undefined` when the log cannot vouch for it (the cursor is
 * past the end, or names an attempt whose entry no longer stands there).
 */
export async function positionOf(engine: Engine, id: string, cursor: Cursor, lastOffset: number): Promise<Position | undefined> {
  if (cursor.offset > lastOffset) return undefined;
  if (cursor.offset === 0 || !engine.replicatesAsynchronously || cursor.epoch === undefined) {
    return { offset: cursor.offset, attempt: undefined };
  }
  const attempt = Number(cursor.epoch);
  const [entry] = await engine.read(id, cursor.offset - 1, 1);
  return entry?.attempt === attempt ? { offset: cursor.offset, attempt } : undefined;
}

/** Last-Event-ID (what a reconnecting EventSource sends) wins over `?from=`. */
export function cursorOf(header: string | string[] | undefined, query: unknown): Cursor {
  if (query !== undefined && typeof query !== "string") throw new LifelineError("invalid_cursor", "Give one `from` cursor.");
  const text = typeof header === "string" && header !== "" ? header : query;
  if (text === undefined || text === "") return { epoch: undefined, offset: 0 };
  const cursor = parseCursor(text);
  if (!cursor) throw new LifelineError("invalid_cursor", `"${text.slice(0, 64)}" is not a cursor.`);
  return cursor;
}

/** Where a follow of any transport starts: after its cursor, from offset 1 after a `reset`, or nowhere (the log has ended there). */
export type Start = { readonly kind: "follow"; readonly from: Position; readonly reset: boolean } | { readonly kind: "atEnd" };

/**
 * Where a follow that asks for the entries after `cursor` starts; counts resets, and resumes
 * unless `countResume` is false (a long-poll continues from a cursor on every request).
 * Throws `generation_not_found` for an unknown (or malformed) id.
 */
export async function startOf(
  engine: Engine,
  metrics: Metrics,
  id: string,
  cursor: Cursor,
  options: { countResume?: boolean } = {},
): Promise<Start> {
  const head = GENERATION_ID.test(id) ? await engine.head(id) : undefined;
  if (!head) throw new LifelineError("generation_not_found");
  const from = await positionOf(engine, id, cursor, head.lastOffset);
  if (from && head.terminal && from.offset === head.lastOffset) return { kind: "atEnd" };
  if (!from) metrics.resets.inc();
  else if (from.offset > 0 && (options.countResume ?? true)) metrics.resumes.inc();
  return { kind: "follow", from: from ?? START, reset: !from };
}

/**
 * Follows a log from `from` to its terminal entry, for any transport (SSE, WebSocket, long-poll).
 * On an engine that can lose acknowledged entries it checks, before each page, that the entry last
 * given still stands; when it does not, it yields `reset` and starts again from offset 1. It ends
 * after the terminal entry, when the log is gone, or when `signal` aborts. Never polls: it waits on
 * the engine.
 *
 * `signal` stops the waiting, not the reading of what is already there: the first page, and the
 * page a `reset` starts again from, are always read, so a reader that will not wait (a long-poll
 * whose time is up, `wait_ms=0`) still gets what the log holds and never a `reset` alone.
 */
export async function* followLog(engine: Engine, id: string, from: Position, signal: AbortSignal): AsyncGenerator<Delivery> {
  const checked = engine.replicatesAsynchronously;
  let at = from;
  let mustRead = true;
  while (mustRead || !signal.aborted) {
    mustRead = false;
    const verify = checked && at.attempt !== undefined && at.offset > 0;
    const page = await engine.read(id, verify ? at.offset - 1 : at.offset, READ_BATCH);
    if (verify) {
      const standing = page.shift();
      if (!standing) {
        // The log is shorter than what this reader was given: wait for its writer to restore it,
        // or for another attempt to pass this offset (then the check below decides).
        const head = await engine.head(id);
        if (!head) return;
        if (head.terminal) {
          yield { kind: "reset" };
          at = START;
          mustRead = true;
        } else if (!signal.aborted) {
          await engine.wait(id, at.offset - 1, signal);
        }
        continue;
      }
      if (standing.attempt !== at.attempt) {
        yield { kind: "reset" };
        at = START;
        mustRead = true;
        continue;
      }
    }
    for (const entry of page) {
      yield { kind: "entry", entry, cursor: cursorFor(engine, entry) };
      at = { offset: entry.offset, attempt: entry.attempt };
      if (isTerminal(entry)) return;
    }
    if (page.length === 0 && !(await engine.head(id))) return; // the log is gone (expired, lost)
    // A short page means the reader is at the end: wait (wait returns at once if more came).
    if (page.length < READ_BATCH - (verify ? 1 : 0) && !signal.aborted) await engine.wait(id, at.offset, signal);
  }
}
