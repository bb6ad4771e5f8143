import type { Entry, ErrorInfo, GenerationRequest, Usage } from "./entries.ts";

/**
 * The answer's text as a fold over the log: each `delta` appends, a `rewind` cuts the text back to
 * what it was right after entry `toOffset`. Entries must be applied in offset order, each once.
 */
export class TextFold {
  #text = "";
  #lastOffset = 0;
  /** lengthAfter[offset] = the text's length right after that entry. */
  readonly #lengthAfter: number[] = [0];

  get text(): string {
    return this.#text;
  }

  get lastOffset(): number {
    return this.#lastOffset;
  }

  /** Applies the next entry; throws when it is not the next offset (a gap or a repeat). */
  apply(entry: Pick<Entry, "offset" | "type"> & { text?: string; toOffset?: number }): void {
    if (entry.offset !== this.#lastOffset + 1) {
      throw new RangeError(`entry ${entry.offset} does not follow ${this.#lastOffset}`);
    }
    if (entry.type === "delta" && typeof entry.text === "string") {
      this.#text += entry.text;
    } else if (entry.type === "rewind" && typeof entry.toOffset === "number") {
      const length = this.#lengthAfter[entry.toOffset];
      if (length === undefined) throw new RangeError(`rewind to unknown offset ${entry.toOffset}`);
      this.#text = this.#text.slice(0, length);
    }
    this.#lastOffset = entry.offset;
    this.#lengthAfter[entry.offset] = this.#text.length;
  }

  /** Forgets everything, as after a `reset` from the server. */
  reset(): void {
    this.#text = "";
    this.#lastOffset = 0;
    this.#lengthAfter.length = 1;
  }
}

export type GenerationStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

/** The state of a generation, derived from its log alone. */
export interface GenerationView {
  readonly id: string;
  readonly status: GenerationStatus;
  readonly model: string;
  readonly text: string;
  readonly lastOffset: number;
  readonly attempts: number;
  readonly finishReason?: string;
  readonly usage?: Usage;
  readonly error?: ErrorInfo;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly request: GenerationRequest;
}

/** Folds a whole log (from offset 1) into the generation's state. */
export function foldGeneration(id: string, entries: readonly Entry[]): GenerationView {
  const first = entries[0];
  if (!first || first.type !== "created") throw new RangeError(`log of ${id} does not start with created`);
  const text = new TextFold();
  let status: GenerationStatus = "queued";
  let attempts = 0;
  let model = first.request.model;
  let finishReason: string | undefined;
  let usage: Usage | undefined;
  let error: ErrorInfo | undefined;
  for (const entry of entries) {
    text.apply(entry);
    switch (entry.type) {
      case "started":
        attempts += 1;
        model = entry.model;
        status = "running";
        break;
      case "completed":
        status = "completed";
        finishReason = entry.finishReason;
        usage = entry.usage;
        break;
      case "failed":
        status = "failed";
        error = entry.error;
        break;
      case "cancelled":
        status = "cancelled";
        break;
      default:
        break;
    }
  }
  const last = entries[entries.length - 1] ?? first;
  return {
    id,
    status,
    model,
    text: text.text,
    lastOffset: text.lastOffset,
    attempts,
    ...(finishReason === undefined ? {} : { finishReason }),
    ...(usage === undefined ? {} : { usage }),
    ...(error === undefined ? {} : { error }),
    createdAt: first.at,
    updatedAt: last.at,
    request: first.request,
  };
}
