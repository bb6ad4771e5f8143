/**
 * Cursors are opaque to clients. Today a cursor is `<offset>`, or `<epoch>:<offset>` where the
 * epoch names the incarnation of the log the offset belongs to.
 */
export interface Cursor {
  readonly epoch: string | undefined;
  readonly offset: number;
}

const CURSOR = /^(?:([A-Za-z0-9_-]{1,64}):)?(0|[1-9][0-9]{0,14})$/;

/** Parses a cursor; `undefined` when the text is not one. */
export function parseCursor(text: string): Cursor | undefined {
  const match = CURSOR.exec(text.trim());
  if (!match) return undefined;
  const offset = Number(match[2]);
  if (!Number.isSafeInteger(offset)) return undefined;
  return { epoch: match[1], offset };
}

export function formatCursor(offset: number, epoch?: string): string {
  return epoch === undefined ? String(offset) : `${epoch}:${offset}`;
}

/** An entry's offset as a user writes it (`--until 40`, `?until=40`): 1, 2, 3 …; `undefined` for anything else. */
export function parseEntryOffset(text: string): number | undefined {
  if (!/^[1-9]\d{0,14}$/.test(text)) return undefined;
  const offset = Number(text);
  return Number.isSafeInteger(offset) ? offset : undefined;
}
