import type { Entry } from "../core/entries.ts";
import { traceDelivery, type DeliveryTrace } from "./delivery-trace.ts";
import type { EncodedEntry } from "./encoded-entry.ts";
import { READ_BATCH, type Position } from "./log-follower.ts";
import type { LogTails, TailEnd, TailMember } from "./log-tail.ts";

/** What a transport does with what a follow gives it. Each method is called in log order. */
export interface FollowSink {
  /** What serves the follow (`sse`, `websocket`, `long-poll`, `door`), for its trace span. */
  readonly transport: string;
  /** Sends one entry; false when the transport's buffer is full: the follow then waits for {@link whenDrained}. */
  entry(frame: EncodedEntry): boolean;
  /** Tells the client to drop its text: the log follows again from offset 1. Same return as `entry`. */
  reset(): boolean;
  /** Calls `resume` once, later, when the transport has room again. */
  whenDrained(resume: () => void): void;
  /** A page was handed over, or the follow is about to wait: what the transport holds back goes out now. */
  flush(): void;
  /** The follow is over (called once, never after `close`). */
  end(outcome: FollowEnd): void;
}

/**
 * Why a follow ended: it gave the terminal entry (`ended`), the log is gone (expired, lost),
 * `stop()` was called, or the engine failed.
 */
export type FollowEnd = { readonly kind: "ended" } | { readonly kind: "stopped" } | TailEnd;

type Step = "taken" | "skipped" | "full" | "over" | "apart";

/**
 * Follows one log from a position to its terminal entry for any transport (SSE, WebSocket,
 * long-poll), which only frames what it is given. It reads on its own while it is behind; at the
 * end of the log it joins the generation's shared tail ({@link LogTails}), which waits and reads
 * once for every follower there and hands each the same encoded frames. A follow whose transport
 * is full leaves the tail, waits for room, and catches up on its own: the log is the buffer, so a
 * slow reader holds up nobody and costs no memory.
 *
 * On an engine that can lose acknowledged entries, before each page it reads on its own it checks
 * that the entry last given still stands; when it does not, it sends `reset` and starts again from
 * offset 1. Never polls: it waits on the engine (through the tail).
 *
 * `stop()` ends the waiting, not the reading of what is already there: the first page, and the
 * page a `reset` starts again from, are always read, so a reader that will not wait (a long-poll
 * whose time is up, `wait_ms=0`) still gets what the log holds and never a `reset` alone.
 */
export class Follow implements TailMember {
  readonly #tails: LogTails;
  readonly #id: string;
  readonly #sink: FollowSink;
  #offset: number;
  #attempt: number | undefined;
  #state: "reading" | "tailing" | "paused" | "done" = "reading";
  #stopAsked = false;
  /** A page is being handed over now: `stop()` takes effect after it. */
  #delivering = false;
  /** Aborts this follow's own wait, in the rare case it waits alone (the log is shorter than its position). */
  #waiting: AbortController | undefined;
  /** The follow's span while tracing is on (decision 040). */
  #trace: DeliveryTrace | undefined;

  constructor(tails: LogTails, id: string, from: Position, sink: FollowSink) {
    this.#tails = tails;
    this.#id = id;
    this.#offset = from.offset;
    this.#attempt = from.attempt;
    this.#sink = sink;
  }

  get offset(): number {
    return this.#offset;
  }

  get attempt(): number | undefined {
    return this.#attempt;
  }

  /** Starts with a read of what the log holds after the position, or with `firstPage` when that read was made. */
  start(firstPage?: readonly Entry[]): void {
    this.#trace = traceDelivery(this.#tails.engine, this.#id, this.#sink.transport, this.#offset, firstPage);
    void this.#read(true, [], firstPage);
  }

  /** Ends the follow once the page it is handing over (or reading) is given; at once when it waits. */
  stop(): void {
    if (this.#over() || this.#stopAsked) return;
    this.#stopAsked = true;
    if (this.#delivering) return;
    if (this.#state === "tailing" || this.#state === "paused") {
      this.#tails.leave(this.#id, this);
      this.#end({ kind: "stopped" });
    } else {
      this.#waiting?.abort();
    }
  }

  /** Ends the follow at once without a word to the sink: the transport is gone. */
  close(): void {
    if (this.#over()) return;
    if (this.#state === "tailing") this.#tails.leave(this.#id, this);
    this.#state = "done";
    this.#trace?.end("closed");
    this.#waiting?.abort();
  }

  take(frames: readonly EncodedEntry[], from: number): boolean {
    this.#delivering = true;
    try {
      for (let i = from; i < frames.length; i++) {
        const step = this.#offer(frames[i]!);
        if (step === "taken" || step === "skipped") continue;
        if (step === "full") this.#pause(frames.slice(i + 1));
        else if (step === "apart") this.released();
        return false;
      }
    } catch (error) {
      this.#end({ kind: "failed", error });
      return false;
    } finally {
      this.#delivering = false;
    }
    if (this.#state !== "tailing") return false; // closed meanwhile
    this.#sink.flush();
    if (this.#stopAsked) {
      this.#end({ kind: "stopped" });
      return false;
    }
    return true;
  }

  released(): void {
    if (this.#state !== "tailing") return;
    this.#state = "reading";
    void this.#read(false, []);
  }

  ended(outcome: TailEnd): void {
    this.#end(outcome);
  }

  /** Reads on its own until it is at the end of the log, then joins the tail. */
  async #read(mustReadFirst: boolean, pending: readonly EncodedEntry[], firstPage?: readonly Entry[]): Promise<void> {
    const engine = this.#tails.engine;
    const checked = engine.replicatesAsynchronously;
    let mustRead = mustReadFirst;
    let given = firstPage;
    try {
      if (!(await this.#deliver(pending))) return;
      for (;;) {
        if (this.#over()) return;
        if (this.#stopAsked && !mustRead) return this.#end({ kind: "stopped" });
        mustRead = false;
        const verify = checked && this.#attempt !== undefined && this.#offset > 0;
        const page = given
          ? [...given]
          : await engine.read(this.#id, verify ? this.#offset - 1 : this.#offset, READ_BATCH, { thenWait: !this.#stopAsked });
        given = undefined;
        if (this.#over()) return;
        if (verify) {
          const standing = page.shift();
          if (!standing) {
            // The log is shorter than what this reader was given: wait for its writer to restore
            // it, or for another attempt to pass this offset (then the check below decides).
            const head = await engine.head(this.#id);
            if (this.#over()) return;
            if (!head) return this.#end({ kind: "gone" });
            if (head.terminal) {
              if (!(await this.#reset())) return;
              mustRead = true;
            } else if (!this.#stopAsked) {
              await this.#waitAlone(this.#offset - 1);
            }
            continue;
          }
          if (standing.attempt !== this.#attempt) {
            if (!(await this.#reset())) return;
            mustRead = true;
            continue;
          }
        }
        if (!(await this.#deliver(page.map((entry) => this.#tails.encode(entry))))) return;
        this.#sink.flush();
        if (page.length === 0 && !(await engine.head(this.#id))) return this.#end({ kind: "gone" });
        if (this.#over()) return;
        if (this.#stopAsked) return this.#end({ kind: "stopped" });
        // A short page means the reader is at the end: the tail waits from here.
        if (page.length < READ_BATCH - (verify ? 1 : 0)) {
          this.#state = "tailing";
          if (this.#tails.join(this.#id, this)) return;
          // The tail is past this position (then there is more to read at once) or stands on
          // another attempt's entry there (then it learns so when the log grows): wait, then look.
          this.#state = "reading";
          await this.#waitAlone(this.#offset);
        }
      }
    } catch (error) {
      this.#end({ kind: "failed", error });
    }
  }

  /** Gives `frames` in order, waiting for room when the transport is full; false once the follow is over. */
  async #deliver(frames: readonly EncodedEntry[]): Promise<boolean> {
    for (const frame of frames) {
      const step = this.#offer(frame);
      if (step === "over") return false;
      if (step === "apart") break; // not this follow's next entry: it reads again from its position
      if (step === "full") await new Promise<void>((resume) => this.#sink.whenDrained(resume));
    }
    return !this.#over();
  }

  #offer(frame: EncodedEntry): Step {
    if (this.#over()) return "over";
    if (frame.offset <= this.#offset) {
      const replaced = frame.offset === this.#offset && this.#tails.engine.replicatesAsynchronously && this.#attempt !== undefined;
      return replaced && frame.attempt !== this.#attempt ? "apart" : "skipped";
    }
    if (frame.offset !== this.#offset + 1) return "apart";
    const room = this.#sink.entry(frame);
    this.#trace?.delivered();
    this.#offset = frame.offset;
    this.#attempt = frame.attempt;
    if (frame.terminal) {
      this.#end({ kind: "ended" });
      return "over";
    }
    return room ? "taken" : "full";
  }

  /** Sends `reset` and goes back to the start of the log; false once the follow is over. */
  async #reset(): Promise<boolean> {
    this.#tails.metrics.resets.inc();
    this.#trace?.reset();
    const room = this.#sink.reset();
    this.#offset = 0;
    this.#attempt = undefined;
    if (!room) await new Promise<void>((resume) => this.#sink.whenDrained(resume));
    return !this.#over();
  }

  /** Left the tail with its transport full: once there is room, the rest of the page, then reading on its own. */
  #pause(rest: readonly EncodedEntry[]): void {
    this.#state = "paused";
    this.#sink.whenDrained(() => {
      if (this.#state !== "paused") return;
      this.#state = "reading";
      void this.#read(false, rest);
    });
  }

  async #waitAlone(afterOffset: number): Promise<void> {
    this.#sink.flush();
    const waiting = new AbortController();
    this.#waiting = waiting;
    try {
      await this.#tails.engine.wait(this.#id, afterOffset, waiting.signal);
    } finally {
      if (this.#waiting === waiting) this.#waiting = undefined;
    }
  }

  /** A method rather than a field test, so that a check after an `await` is not narrowed away. */
  #over(): boolean {
    return this.#state === "done";
  }

  #end(outcome: FollowEnd): void {
    if (this.#over()) return;
    this.#state = "done";
    this.#trace?.end(outcome.kind, outcome.kind === "failed" ? outcome.error : undefined);
    this.#sink.end(outcome);
  }
}
