import { Agent, util, type Dispatcher } from "undici";
import { sliceSpent, yieldIfLong } from "../../observability/turns.ts";

/** The most of a body parsed ahead of a reader that is away; past it the socket waits (a start parses all it holds: `onData`). */
const AHEAD_BYTES = 16 << 10;

/** The least a response's own buffer for what the reader has not read yet holds. */
const MIN_HELD_BYTES = 1 << 10;

export type ResponseHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** A streamed response: its status and headers, and its body read chunk by chunk. */
export interface SlicedResponse {
  readonly status: number;
  readonly statusMessage: string;
  readonly headers: ResponseHeaders;
  /** What the body holds next, everything parsed since the last read; `undefined` at its end. */
  read(): Promise<Buffer | undefined>;
  /** The rest of the body is parsed and dropped, so the connection goes back to the pool. */
  drain(): void;
}

/** One request under way: its response, and how to drop it (closing its connection). */
export interface SlicedRequest {
  readonly response: Promise<SlicedResponse>;
  abort(reason?: Error): void;
}

/**
 * A keep-alive pool for a model's API. Its own timeouts are off: how long a model may take to
 * connect, to answer or between two tokens is the resilience layer's to say
 * (`llm/resilience/timeouts.ts`, configurable per model).
 */
export function modelDispatcher(): Dispatcher {
  return new Agent({ headersTimeout: 0, bodyTimeout: 0, connect: { timeout: 0 } });
}

/**
 * Sends a request whose response body is parsed off the socket in turns of the event loop.
 *
 * An HTTP client parses a socket as soon as it is read: with a thousand answers of a fast model,
 * one poll phase parsed a thousand sockets' backlogs, half a second and more during which no timer
 * ran (decision 051). Here the body is undici's, whose parser stops where it is told to and keeps
 * the rest of the socket's data for later: each chunk is handed over as it is parsed, and once the
 * loop's slice is spent (`observability/turns.ts`) or the reader is {@link AHEAD_BYTES} behind, the
 * parser stops. It goes on when the reader asks for more, in a turn whose slice is not spent. A
 * chunk already parsed is never held back, so a stream at a reader's pace is read as before; only a
 * backlog waits for the next turn. (Only a chunked response kept alive is stopped; see `#pausable`.)
 */
export function sendSliced(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions): SlicedRequest {
  const body = new SlicedBody();
  dispatcher.dispatch(options, body);
  return { response: body.response, abort: (reason) => body.abort(reason) };
}

class SlicedBody implements Dispatcher.DispatchHandlers {
  readonly response: Promise<SlicedResponse>;
  #respond!: (response: SlicedResponse) => void;
  #fail!: (error: Error) => void;
  #abort: ((error?: Error) => void) | undefined;
  /** An abort asked for before the request started. */
  #abortReason: Error | undefined;
  /**
   * Whether the parser may be stopped: only in a chunked response on a connection kept alive. In
   * undici 6 and 7 a socket that ends while the parser of a response that is not kept alive is
   * stopped fails an assertion in the socket's `end` handler and takes the process down
   * (nodejs/undici#5360, fixed only in undici 8, which needs Node 22); a chunked response kept
   * alive never reaches that path. Other responses (`Connection: close`, a body that ends with the
   * connection, a coding after `chunked`) are parsed as they come, without backpressure. (An
   * HTTP/1.0 response that claims `chunked`, which HTTP/1.0 does not have, is not told apart, as the
   * version is not handed to the handler: it is stopped, and a socket that ends meanwhile does not
   * reach the assertion; `test/llm/sliced-response.test.ts` has it.)
   */
  #pausable = false;
  /** The parser stopped; `#resume` lets it go on. */
  #paused = false;
  /** The reader let the parser go on: it parses what the socket holds (see `onData`). */
  #resuming = false;
  #resume: (() => void) | undefined;
  /**
   * What was parsed since the last read, `#ahead` bytes of it: the first chunk as undici gave it,
   * and once a second comes, a buffer of our own that the chunks are copied into ({@link #keep}).
   */
  #held: Buffer | undefined;
  #owned = false;
  #ahead = 0;
  #ended = false;
  #error: Error | undefined;
  #draining = false;
  #wake: (() => void) | undefined;

  constructor() {
    this.response = new Promise((resolve, reject) => {
      this.#respond = resolve;
      this.#fail = reject;
    });
    this.response.catch(() => undefined); // a request dropped before its response is no one's rejection
  }

  abort(reason = new Error("request aborted")): void {
    if (this.#abort) return this.#abort(reason);
    // Not on a connection yet (connecting, or queued behind others): it fails now, and is dropped
    // once undici hands it a connection.
    this.#abortReason = reason;
    this.onError(reason);
  }

  onConnect(abort: (error?: Error) => void): void {
    this.#abort = abort;
    if (this.#abortReason) abort(this.#abortReason);
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusMessage: string): boolean {
    if (status < 200) return true; // an informational answer: the response is still to come
    this.#resume = resume;
    const headers = util.parseHeaders(rawHeaders) as ResponseHeaders;
    this.#pausable = lastCoding(headers["transfer-encoding"]) === "chunked" && !hasToken(headers.connection, "close");
    this.#respond({ status, statusMessage, headers, read: () => this.#read(), drain: () => this.#drain() });
    return true;
  }

  /**
   * Returns `false` to stop the parser where it is; undici keeps the rest of the socket's data.
   *
   * Data that comes in while the reader waits is parsed up to {@link AHEAD_BYTES} ahead of it. When
   * the reader lets the parser go on, it parses all the socket holds (unless the slice is spent):
   * undici takes the socket's whole buffer at each start and puts back what its parser left, and
   * the socket, emptied for a moment, reads from the kernel once more (in the next poll phase). A
   * start that parsed less than came in would let the socket's buffer grow by a read each time,
   * copied whole at every start: no backpressure on the model, and the copying quadratic in its
   * lead (decision 053).
   */
  onData(chunk: Buffer): boolean {
    if (this.#draining) return true;
    this.#keep(chunk);
    this.#wakeReader();
    this.#paused = this.#pausable && ((!this.#resuming && this.#ahead >= AHEAD_BYTES) || sliceSpent());
    return !this.#paused;
  }

  /**
   * Holds `chunk` for the reader. A chunk is a view into the socket's read, and a fast model's
   * tokens come one small chunk each: kept as they are, a thousand answers' leads made a hundred
   * thousand and more objects, all alive across the young generation's collections and copied at
   * each. Copied into one buffer per response, they die young (decision 057).
   */
  #keep(chunk: Buffer): void {
    const held = this.#held;
    const ahead = this.#ahead + chunk.length;
    if (held === undefined) {
      this.#held = chunk;
      this.#owned = false;
    } else if (this.#owned && ahead <= held.length) {
      chunk.copy(held, this.#ahead);
    } else {
      const grown = Buffer.allocUnsafe(Math.max(ahead * 2, MIN_HELD_BYTES));
      held.copy(grown, 0, 0, this.#ahead);
      chunk.copy(grown, this.#ahead);
      this.#held = grown;
      this.#owned = true;
    }
    this.#ahead = ahead;
  }

  onComplete(): void {
    this.#ended = true;
    this.#wakeReader();
  }

  onError(error: Error): void {
    this.#error ??= error;
    this.#fail(error);
    this.#wakeReader();
  }

  async #read(): Promise<Buffer | undefined> {
    for (;;) {
      const held = this.#held;
      if (held !== undefined) {
        const read = this.#owned ? held.subarray(0, this.#ahead) : held;
        this.#held = undefined;
        this.#ahead = 0;
        return read;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return undefined;
      if (this.#paused) {
        // Parsing goes on synchronously: only in a turn whose slice is not spent, asked right
        // before it (not across an await, in which others' work may spend the slice, and the
        // parser, stopped after one chunk, would put back all the socket holds).
        const turn = yieldIfLong();
        if (turn) await turn;
        else this.#goOn();
        continue;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #drain(): void {
    this.#draining = true;
    this.#held = undefined;
    this.#ahead = 0;
    this.#goOn();
  }

  #goOn(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#resuming = true;
    try {
      this.#resume?.(); // undici parses what the socket holds at once, before it returns
    } finally {
      this.#resuming = false;
    }
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** A header's comma-separated tokens, lower-cased, over all its lines. */
function tokens(value: string | string[] | undefined): string[] {
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return values.flatMap((v) => v.split(",").map((part) => part.trim().toLowerCase()));
}

function hasToken(value: string | string[] | undefined, token: string): boolean {
  return tokens(value).includes(token);
}

/** The transfer coding applied last: the body is chunked only when it is `chunked` (RFC 9112 §6.3). */
function lastCoding(value: string | string[] | undefined): string | undefined {
  return tokens(value).at(-1);
}
