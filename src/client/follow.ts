import type { Entry } from "../core/entries.ts";
import { AnswerFold } from "./answer-fold.ts";
import { backoffDelay, sleep, type ReconnectPolicy } from "./backoff.ts";
import { isRenewableTokenError, type Credentials } from "./credentials.ts";
import { LifelineClientError } from "./errors.ts";
import { EventQueue } from "./event-queue.ts";
import { isRetryableStatus } from "../core/retry.ts";
import { type SessionEnd, type Transport, type TransportName, type TransportSink } from "./transport.ts";
import type { FinalAnswer, FinalStatus, FollowEvent, FollowOptions, FollowState } from "./types.ts";

/** What a follow needs from its client. */
export interface FollowContext {
  readonly transports: readonly Transport[];
  readonly heartbeatTimeoutMs: number;
  readonly reconnect: ReconnectPolicy;
  /** How many connections in a row may fail to open before the next transport is tried. */
  readonly fallbackAfter: number;
  /**
   * The index in `transports` of the one that last worked for any follow of this client: a new
   * follow starts there, rather than finding its way through a network's blocks again.
   */
  preferred: number;
  /** The client's key or read tokens, and how to get a new token. */
  readonly credentials: Credentials;
  /** Cancels the generation, with `token` when the client holds no key. */
  cancel(id: string, token: string | undefined): Promise<void>;
  /** The generation's status, for a follow that resumed at the terminal entry and never saw it. */
  statusOf(id: string, signal: AbortSignal, token: string | undefined): Promise<string>;
}

const FINAL: ReadonlySet<string> = new Set<FinalStatus>(["completed", "failed", "cancelled"]);

/**
 * Follows one answer to its end across any number of connections: resumes from its cursor,
 * reconnects with backoff, watches heartbeats, applies each entry once and in order, and falls back
 * to the next transport when one cannot connect.
 */
export class AnswerFollow implements AsyncIterable<FollowEvent> {
  /** The generation followed. */
  readonly id: string;
  /** The final answer, once the log ends; rejects on a fatal error or when following is stopped. */
  readonly done: Promise<FinalAnswer>;
  readonly #ctx: FollowContext;
  readonly #fold: AnswerFold;
  readonly #queue = new EventQueue<FollowEvent>();
  readonly #stop = new AbortController();
  readonly #onEvent: ((event: FollowEvent) => void) | undefined;
  #cursor: string | undefined;
  /** The read token every connection presents (decision 034); replaced when the gateway refuses it. */
  #token: string | undefined;
  #state: FollowState | undefined;
  #transport: TransportName | undefined;
  #iterated = false;
  #final: FinalAnswer | undefined;

  constructor(ctx: FollowContext, id: string, options: FollowOptions = {}) {
    this.#ctx = ctx;
    this.id = id;
    this.#cursor = options.cursor;
    this.#token = options.token;
    this.#onEvent = options.onEvent;
    this.#fold = new AnswerFold(options.cursor === undefined ? undefined : { text: options.text ?? "" });
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) this.#stop.abort(signal.reason);
      else signal.addEventListener("abort", () => this.#stop.abort(signal.reason), { once: true });
    }
    this.done = this.#run();
    this.done.catch(() => undefined); // a caller that only iterates must not see an unhandled rejection
  }

  /** The answer's text so far. */
  get text(): string {
    return this.#fold.text;
  }

  /** The cursor of the last applied entry: pass it to a later `follow` to resume there. */
  get cursor(): string | undefined {
    return this.#cursor;
  }

  get state(): FollowState | undefined {
    return this.#state;
  }

  /** The transport of the current (or last) connection. */
  get transport(): TransportName | undefined {
    return this.#transport;
  }

  /** Asks the server to cancel the generation; the follow then ends with status `cancelled`. */
  cancel(): Promise<void> {
    return this.#ctx.cancel(this.id, this.#token);
  }

  /** Stops following; `done` rejects with an `AbortError` unless the answer already ended. */
  close(): void {
    if (!this.#final) this.#stop.abort(new DOMException("The follow was closed.", "AbortError"));
  }

  /** The events, in order; one consumer. Leaving the loop early (`break`) closes the follow. */
  [Symbol.asyncIterator](): AsyncIterator<FollowEvent, undefined> {
    if (this.#iterated) throw new TypeError("A follow can be iterated once.");
    this.#iterated = true;
    return {
      next: () => this.#queue.next(),
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  async #run(): Promise<FinalAnswer> {
    try {
      const final = await this.#followToEnd();
      this.#setState("ended");
      this.#queue.end();
      return final;
    } catch (error) {
      this.#queue.fail(error);
      throw error;
    } finally {
      this.#ctx.credentials.forget(this.id, this.#token);
    }
  }

  async #followToEnd(): Promise<FinalAnswer> {
    const { transports, reconnect, fallbackAfter } = this.#ctx;
    let turn = this.#ctx.preferred;
    let failedOpens = 0;
    // Since a connection last worked: the transports given up on, and the last refusal by something in the way.
    const givenUp = new Set<number>();
    let refusal: LifelineClientError | undefined;
    let attempt = 0;
    // The gateway refused the token held: the next connection needs a new one.
    let stale = false;
    // The token was just renewed: a new one refused too is final (the application gives out bad ones).
    let renewed = false;
    const { credentials } = this.#ctx;
    this.#setState("connecting");
    for (;;) {
      this.#stop.signal.throwIfAborted();
      const transport = transports[turn % transports.length];
      if (!transport) throw new TypeError("no transport");
      this.#transport = transport.name;
      const tokenless = await this.#readyToken(stale);
      if (!tokenless) stale = false;
      const { end, worked, progressed } = tokenless ? { end: tokenless, worked: false, progressed: false } : await this.#session(transport);
      if (worked) {
        this.#ctx.preferred = turn % transports.length;
        givenUp.clear();
        refusal = undefined;
      }
      if (this.#final) return this.#final;
      if (end.kind === "fatal") {
        // Expired (or signed with a retired key): a new token resumes from the cursor at once.
        if (!renewed && credentials.canRenew && isRenewableTokenError(end.error)) {
          renewed = true;
          stale = true;
          continue;
        }
        throw end.error;
      }
      if (!tokenless) renewed = false;
      this.#stop.signal.throwIfAborted();
      if (end.kind === "ended") {
        const final = await this.#endedUnseen();
        if (final) return final;
      }
      // A transport that something in the way refuses is left at once, one that cannot open after
      // `fallbackAfter` tries. When every one was given up on and one of them was refused, the way
      // is blocked rather than down: give up with that refusal instead of trying forever.
      // A token that could not be had says nothing of the transport.
      failedOpens = worked || end.kind === "ended" ? 0 : tokenless ? failedOpens : failedOpens + 1;
      if (end.kind === "blocked" || failedOpens >= fallbackAfter) {
        if (end.kind === "blocked") refusal = end.error;
        givenUp.add(turn % transports.length);
        if (refusal && givenUp.size === transports.length) throw refusal;
        turn += 1;
        failedOpens = 0;
      }
      if (progressed) attempt = 0;
      // Until a connection has opened, the follow is still connecting, whatever it takes.
      if (this.#state !== "connecting") this.#setState("reconnecting");
      const delay = Math.max(backoffDelay(reconnect, attempt++), end.kind === "dropped" ? (end.retryAfterMs ?? 0) : 0);
      await sleep(delay, this.#stop.signal);
    }
  }

  /**
   * Makes sure the next connection has a token to present, when the client has credentials: the one
   * held, else a first one, or a new one when `stale`. The gateway being unreachable while the SDK
   * asks it for a token (with the key) is a dropped connection, tried again with backoff; an error
   * of the application's `readToken` ends the follow.
   */
  async #readyToken(stale: boolean): Promise<SessionEnd | undefined> {
    if (this.#token !== undefined && !stale) return undefined;
    const { credentials } = this.#ctx;
    try {
      this.#token = stale ? await credentials.renew(this.id, this.#stop.signal) : await credentials.tokenFor(this.id, this.#stop.signal);
      return undefined;
    } catch (error) {
      this.#stop.signal.throwIfAborted();
      const transient =
        error instanceof LifelineClientError &&
        (error.code === "network_error" || (error.status !== undefined && isRetryableStatus(error.status)));
      if (transient) return { kind: "dropped", reason: `no read token: ${error.message}` };
      throw error;
    }
  }

  /** One connection, watched for heartbeats; entries are applied as they come. */
  async #session(transport: Transport): Promise<{ end: SessionEnd; worked: boolean; progressed: boolean }> {
    const session = new AbortController();
    const stop = (): void => session.abort(this.#stop.signal.reason);
    this.#stop.signal.addEventListener("abort", stop, { once: true });
    let opened = false;
    // Data came through after the server accepted: a proxy that buffers the stream lets headers
    // through and nothing else, and such a connection counts as one that failed to open.
    let heard = false;
    let progressed = false;
    let lastSeen = Date.now();
    const timeout = this.#ctx.heartbeatTimeoutMs;
    let watchdog: ReturnType<typeof setTimeout>;
    const watch = (ms: number): void => {
      watchdog = setTimeout(() => {
        const quiet = Date.now() - lastSeen;
        if (quiet >= timeout) session.abort(new Error(`no data or heartbeat for ${quiet} ms`));
        else watch(timeout - quiet);
      }, ms);
    };
    watch(timeout);
    const live = (): boolean => !session.signal.aborted && !this.#final;
    const sink: TransportSink = {
      alive: () => {
        lastSeen = Date.now();
        heard ||= opened;
      },
      opened: () => {
        if (!live()) return;
        opened = true;
        lastSeen = Date.now();
        this.#setState(this.#state === "connecting" ? "live" : this.#state === "reconnecting" ? "resumed" : this.#state);
      },
      entry: (entry, cursor) => {
        if (!live()) return;
        lastSeen = Date.now();
        heard ||= opened;
        const applied = this.#apply(entry, cursor, session);
        progressed ||= applied;
      },
      reset: (cursor) => {
        if (!live()) return;
        this.#reset(cursor);
      },
    };
    try {
      const end = await transport.session(this.id, this.#cursor, sink, session.signal, this.#token);
      return { end, worked: opened && heard, progressed };
    } finally {
      clearTimeout(watchdog!);
      this.#stop.signal.removeEventListener("abort", stop);
      session.abort(new Error("session over"));
    }
  }

  /** Applies one entry once and in order; a gap or an unknown rewind drops the connection. */
  #apply(entry: Entry, cursor: string | undefined, session: AbortController): boolean {
    const outcome = this.#fold.apply(entry);
    if (outcome === "duplicate") return false;
    if (outcome === "gap") {
      session.abort(new Error(`gap: entry ${entry.offset} after ${this.#fold.lastOffset ?? "?"}`));
      return false;
    }
    if (outcome === "rewindBeforeStart") {
      // The text before the resumed cursor is not known here: rebuild the whole answer from offset 1.
      this.#reset(undefined);
      session.abort(new Error("rewind before the resumed cursor"));
      return false;
    }
    if (cursor !== undefined) this.#cursor = cursor;
    this.#emit({ type: "entry", entry, cursor: this.#cursor, text: this.#fold.text });
    const terminal = this.#fold.terminal;
    if (terminal) {
      this.#final = { text: this.#fold.text, status: terminal.type as FinalStatus, entries: this.#fold.entries };
      session.abort(new Error("the answer ended"));
    }
    return true;
  }

  #reset(cursor: string | undefined): void {
    this.#fold.reset();
    this.#cursor = cursor;
    this.#emit({ type: "reset" });
  }

  /** The server says the log is over but this follow never saw its end (it resumed at the terminal entry). */
  async #endedUnseen(): Promise<FinalAnswer | undefined> {
    const status = await this.#statusOf().catch((error: unknown) => {
      if (error instanceof LifelineClientError && error.status !== undefined && error.status < 500) throw error;
      return undefined;
    });
    if (status === undefined || !FINAL.has(status)) return undefined;
    this.#final = { text: this.#fold.text, status: status as FinalStatus, entries: this.#fold.entries };
    return this.#final;
  }

  /** The generation's status, asked with this follow's token (renewed once if the gateway refuses it). */
  async #statusOf(): Promise<string> {
    const { credentials } = this.#ctx;
    try {
      return await this.#ctx.statusOf(this.id, this.#stop.signal, this.#token);
    } catch (error) {
      if (!credentials.canRenew || !isRenewableTokenError(error)) throw error;
      this.#token = await credentials.renew(this.id, this.#stop.signal);
      return this.#ctx.statusOf(this.id, this.#stop.signal, this.#token);
    }
  }

  #setState(state: FollowState | undefined): void {
    if (state === undefined || state === this.#state) return;
    this.#state = state;
    this.#emit({ type: "state", state });
  }

  #emit(event: FollowEvent): void {
    this.#queue.push(event);
    if (!this.#onEvent) return;
    try {
      this.#onEvent(event);
    } catch (error) {
      // The application's callback failed: stop following and report its error.
      this.#stop.abort(error);
    }
  }
}
