import { isTerminal, type Entry } from "../core/entries.ts";

/** What applying one entry did; only `applied` changes the fold. */
export type ApplyOutcome = "applied" | "duplicate" | "gap" | "rewindBeforeStart";

/**
 * The answer's text as the client folds it (DESIGN §3), able to start at an opaque cursor: then the
 * first entry it sees fixes where it stands, and `text` is what the caller knew at that cursor.
 * Unlike core's `TextFold`, a repeat or a gap is an outcome to act on, not an exception.
 */
export class AnswerFold {
  #text: string;
  /** `undefined` until the first entry after an opaque cursor arrives. */
  #lastOffset: number | undefined;
  #lengthAfter = new Map<number, number>();
  #entries: Entry[] = [];
  #terminal: Entry | undefined;

  constructor(resumed?: { readonly text: string }) {
    this.#text = resumed?.text ?? "";
    this.#lastOffset = resumed ? undefined : 0;
    if (!resumed) this.#lengthAfter.set(0, 0);
  }

  get text(): string {
    return this.#text;
  }

  /** The offset of the last applied entry; `undefined` before the first one after a cursor. */
  get lastOffset(): number | undefined {
    return this.#lastOffset;
  }

  /** The entries applied since the start (or the last reset). */
  get entries(): readonly Entry[] {
    return this.#entries;
  }

  get terminal(): Entry | undefined {
    return this.#terminal;
  }

  apply(entry: Entry): ApplyOutcome {
    if (this.#lastOffset === undefined) {
      this.#lastOffset = entry.offset - 1;
      this.#lengthAfter.set(this.#lastOffset, this.#text.length);
    }
    if (entry.offset <= this.#lastOffset) return "duplicate";
    if (entry.offset !== this.#lastOffset + 1) return "gap";
    if (entry.type === "delta") {
      this.#text += entry.text;
    } else if (entry.type === "rewind") {
      const length = this.#lengthAfter.get(entry.toOffset);
      if (length === undefined) return "rewindBeforeStart";
      this.#text = this.#text.slice(0, length);
    }
    this.#lastOffset = entry.offset;
    this.#lengthAfter.set(entry.offset, this.#text.length);
    this.#entries.push(entry);
    if (isTerminal(entry)) this.#terminal = entry;
    return "applied";
  }

  /** Forgets everything: the log follows again from offset 1. */
  reset(): void {
    this.#text = "";
    this.#lastOffset = 0;
    this.#lengthAfter = new Map([[0, 0]]);
    this.#entries = [];
    this.#terminal = undefined;
  }
}
