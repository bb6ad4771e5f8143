import type { Entry } from "../../core/entries.ts";
import type { EncodedEntry } from "../encoded-entry.ts";
import type { Follow, FollowEnd, FollowSink } from "../follow.ts";
import type { SseOwner, SseStream } from "../sse-streams.ts";

/** What a door's format makes of the log: frames per entry, a `reset`, and the frame that says why a stream stops early. */
export interface LogFormat {
  /** The frames one entry adds (possibly none). */
  apply(entry: Entry): string;
  /** The log follows again from offset 1. */
  reset(): void;
  /** The format has said its last frame: the stream ends. */
  readonly over: boolean;
  /** The frame that tells the client the stream stops before the answer's end, and why. */
  interrupted(code: "shutting_down" | "engine_unavailable" | "generation_not_found"): string;
}

/**
 * An event stream of a door whose format can only append (the OpenAI chunks and Responses events,
 * the AI SDK's UI message stream): the sink a {@link Follow} gives the log to, writing what the
 * format makes of each entry. The stream ends when the format has said its last frame. A client
 * that leaves only ends its stream: the answer goes on, and can be read again. When the gateway
 * shuts down or the engine fails, the client gets an error frame (the official client throws it)
 * rather than an end that would look like a finished answer.
 */
export class DoorStream implements FollowSink, SseOwner {
  readonly transport = "door";
  follow: Follow | undefined;
  readonly #sse: SseStream;
  readonly #format: LogFormat;
  readonly #shutdown: AbortSignal;

  constructor(sse: SseStream, format: LogFormat, shutdown: AbortSignal) {
    this.#sse = sse;
    this.#format = format;
    this.#shutdown = shutdown;
    sse.owner = this;
  }

  entry(frame: EncodedEntry): boolean {
    if (this.#format.over) return true;
    const frames = this.#format.apply(frame.entry);
    // The format ended before the log did (the text diverged): the follow stops after this page.
    if (this.#format.over && !frame.terminal) this.follow?.stop();
    return frames === "" || this.#sse.write(frames);
  }

  reset(): boolean {
    this.#format.reset();
    return true;
  }

  flush(): void {
    this.#sse.flush();
  }

  whenDrained(resume: () => void): void {
    this.#sse.whenDrained(resume);
  }

  end(outcome: FollowEnd): void {
    if (!this.#format.over) {
      if (outcome.kind === "gone") this.#sse.write(this.#format.interrupted("generation_not_found"));
      else if (outcome.kind === "failed") this.#sse.write(this.#format.interrupted("engine_unavailable"));
    }
    this.#sse.end(outcome.kind === "failed" ? outcome.error : undefined);
  }

  finished(): void {
    // The gateway shuts down with the answer under way: say so, or the end would look like the answer's.
    if (this.#shutdown.aborted && !this.#format.over) this.#sse.write(this.#format.interrupted("shutting_down"));
    this.follow?.close();
  }
}
