import type { Entry } from "./entries.ts";
import { TextFold } from "./fold.ts";

/**
 * What an entry adds to the text a door that can only append has shown: `text` to send (empty when
 * the entry adds nothing to what was shown), or `diverged`: the answer's text no longer begins with
 * what was shown, and no appended text can make the client's copy right.
 */
export type AppendStep = { readonly kind: "append"; readonly text: string } | { readonly kind: "diverged" };

const NOTHING: AppendStep = { kind: "append", text: "" };
const DIVERGED: AppendStep = { kind: "diverged" };

/**
 * The answer's text as seen through a format that can only append (OpenAI chunks, the AI SDK's
 * text deltas): a pure function of the log, so every gateway, on every resume, derives the same
 * appends from the same entries.
 *
 * The log's own text can move back: a `rewind` (a model that cannot continue starts over) or a
 * `reset` (the gateway replays a log that a Redis failover changed). Then nothing is sent while the
 * text is again only a prefix of what was shown; once it grows past it, what is new is sent, as long
 * as it still begins with what was shown (a deterministic model writes the same text again). When it
 * does not, the view has diverged for good and the door ends the answer with an error the client can
 * act on, rather than show a text the uninterrupted run would not have produced (decision 025).
 *
 * Work per entry is proportional to the entry, not to the text: the view compares only what an
 * entry adds while the text is behind what was shown.
 */
export class AppendOnlyText {
  readonly #fold = new TextFold();
  #shown = "";
  #diverged = false;

  /** What has been shown so far. */
  get shown(): string {
    return this.#shown;
  }

  get diverged(): boolean {
    return this.#diverged;
  }

  /** The log's own text so far (what a door that can replace text would show). */
  get text(): string {
    return this.#fold.text;
  }

  /** Applies the next entry of the log (in offset order, as {@link TextFold} requires). */
  apply(entry: Entry): AppendStep {
    if (this.#diverged) return DIVERGED;
    const before = this.#fold.text.length;
    this.#fold.apply(entry);
    if (entry.type !== "delta" && entry.type !== "rewind") return NOTHING;
    const text = this.#fold.text;
    if (text.length <= before) return NOTHING; // a rewind: the text is cut back to a prefix of what was shown
    if (before === this.#shown.length) return this.#show(text.slice(before)); // in step: the common case
    // Behind what was shown: what the entry adds must be what was shown there.
    const shownPart = this.#shown.slice(before, text.length);
    if (text.slice(before, before + shownPart.length) !== shownPart) return this.#diverge();
    return this.#show(text.slice(this.#shown.length));
  }

  /** The log is replayed from offset 1 (a `reset`): the text starts again from nothing, what was shown stays. */
  reset(): void {
    this.#fold.reset();
  }

  #show(added: string): AppendStep {
    if (added === "") return NOTHING;
    this.#shown += added;
    return { kind: "append", text: added };
  }

  #diverge(): AppendStep {
    this.#diverged = true;
    return DIVERGED;
  }
}
