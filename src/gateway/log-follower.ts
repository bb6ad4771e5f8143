import { formatCursor, parseCursor, type Cursor } from "../core/cursor.ts";
import type { Entry } from "../core/entries.ts";
import { LifelineError } from "../core/errors.ts";
import { GENERATION_ID } from "../core/generation-id.ts";
import type { Engine } from "../engine/port.ts";
import type { Metrics } from "../observability/metrics.ts";

/** Where a reader stands: the last entry it was given, and the attempt that wrote it when checked. */
export interface Position {
  readonly offset: number;
  readonly attempt: number | undefined;
}

export const START: Position = { offset: 0, attempt: undefined };

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
export type Start =
  | {
      readonly kind: "follow";
      readonly from: Position;
      readonly reset: boolean;
      /** What the log holds after `from`, when finding the start already read it. */
      readonly firstPage?: readonly Entry[];
    }
  | { readonly kind: "atEnd" };

/** Entries asked of the engine per read by a follower. */
export const READ_BATCH = 256;

/**
 * Where a follow that asks for the entries after `cursor` starts; counts resets, and resumes
 * unless `countResume` is false (a long-poll continues from a cursor on every request). `thenWait`
 * false: the follow will not wait (a long-poll with no time to wait).
 * Throws `generation_not_found` for an unknown (or malformed) id.
 */
export async function startOf(
  engine: Engine,
  metrics: Metrics,
  id: string,
  cursor: Cursor,
  options: { countResume?: boolean; thenWait?: boolean } = {},
): Promise<Start> {
  if (!GENERATION_ID.test(id)) throw new LifelineError("generation_not_found");
  if (cursor.offset === 0) {
    // From the start (a new reader, or one after a reset): a log always holds its `created`
    // entry, so the first page proves the log is there; one call instead of two. Read for waiting
    // (unless the caller will not wait), so the follow's first wait asks nothing more (decision 045).
    const firstPage = await engine.read(id, 0, READ_BATCH, { thenWait: options.thenWait ?? true });
    if (firstPage.length === 0) throw new LifelineError("generation_not_found");
    return { kind: "follow", from: START, reset: false, firstPage };
  }
  const head = await engine.head(id);
  if (!head) throw new LifelineError("generation_not_found");
  const from = await positionOf(engine, id, cursor, head.lastOffset);
  if (from && head.terminal && from.offset === head.lastOffset) return { kind: "atEnd" };
  if (!from) metrics.resets.inc();
  else if (from.offset > 0 && (options.countResume ?? true)) metrics.resumes.inc();
  return { kind: "follow", from: from ?? START, reset: !from };
}
