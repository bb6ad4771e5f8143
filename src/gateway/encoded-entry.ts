import { isTerminal, type Entry } from "../core/entries.ts";
import { encodeSseFrame, wsEntryFrameRest } from "../core/wire.ts";

/**
 * One log entry as the transports send it, each encoding made once, on first use, and shared by
 * every follower that is given this object: the entry's JSON, its SSE frame, and the part of a
 * WebSocket `entry` frame that does not name the subscription.
 */
export class EncodedEntry {
  readonly entry: Entry;
  readonly cursor: string;
  readonly terminal: boolean;
  #json: string | undefined;
  #sse: string | undefined;
  #wsRest: string | undefined;

  constructor(entry: Entry, cursor: string) {
    this.entry = entry;
    this.cursor = cursor;
    this.terminal = isTerminal(entry);
  }

  get offset(): number {
    return this.entry.offset;
  }

  get attempt(): number {
    return this.entry.attempt;
  }

  /** The entry as JSON. */
  get json(): string {
    return (this.#json ??= JSON.stringify(this.entry));
  }

  /** `id: <cursor>`, `event: <type>`, `data: <entry as JSON>`. */
  get sse(): string {
    return (this.#sse ??= encodeSseFrame({ id: this.cursor, event: this.entry.type, data: this.json }));
  }

  /** What follows `wsEntryFrameHead(sub)` in the WebSocket `entry` frame. */
  get wsRest(): string {
    return (this.#wsRest ??= wsEntryFrameRest(this.cursor, this.json));
  }
}
