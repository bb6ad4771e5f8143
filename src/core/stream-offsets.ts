/**
 * Offsets of the Durable Streams door: opaque to clients, sorted by plain string comparison.
 * `<position>_<attempt>`, both in 16 digits: the position after a stream's chunk (or a generation
 * log's entry), and, on a generation stream, the attempt that wrote that entry (0 elsewhere), so
 * an offset never names two different entries (decision 027).
 */

/** The protocol's sentinels: the start of a stream and its tail now. */
export const OFFSET_START = "-1";
export const OFFSET_NOW = "now";

const OFFSET = /^(\d{16})_(\d{16})$/;

export interface StreamOffset {
  readonly position: number;
  /** The attempt of the entry at `position` on a generation stream; 0 on any other. */
  readonly attempt: number;
}

/** The offset after position `position` (of the entry written by `attempt`). */
export function formatOffset(position: number, attempt = 0): string {
  return `${String(position).padStart(16, "0")}_${String(attempt).padStart(16, "0")}`;
}

/** An offset as the server writes them, or `undefined` for anything else (sentinels included). */
export function parseOffset(text: string): StreamOffset | undefined {
  const match = OFFSET.exec(text);
  if (!match) return undefined;
  const position = Number(match[1]);
  const attempt = Number(match[2]);
  if (!Number.isSafeInteger(position) || !Number.isSafeInteger(attempt)) return undefined;
  return { position, attempt };
}
