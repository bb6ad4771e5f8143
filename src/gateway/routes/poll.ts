import type { FastifyInstance } from "fastify";
import { formatCursor, type Cursor } from "../../core/cursor.ts";
import type { Entry } from "../../core/entries.ts";
import { LifelineError } from "../../core/errors.ts";
import { ROUTE_PATHS } from "../../core/routes.ts";
import { HEADERS, LONG_POLL, type PollEvent, type PollResponse } from "../../core/wire.ts";
import type { EncodedEntry } from "../encoded-entry.ts";
import { Follow, type FollowEnd, type FollowSink } from "../follow.ts";
import { cursorOf, startOf } from "../log-follower.ts";
import type { EventRoutesOptions } from "./events.ts";

export type PollRoutesOptions = Pick<EventRoutesOptions, "engine" | "owners" | "metrics" | "tails" | "shutdown">;

/**
 * `GET /v1/generations/:id/poll`: the log over plain HTTP requests, for networks that let neither
 * an event stream nor a WebSocket through (protocol in `core/wire.ts`). A request returns at once
 * with what the log holds after the cursor (one engine page), or waits up to `wait_ms` for the
 * first entry and then returns the page it came in; it never waits once it has something. It
 * follows the log exactly as SSE does (a {@link Follow}, waiting in the generation's shared tail),
 * so cursor checks and `reset` are the same.
 */
export function pollRoutes(app: FastifyInstance, options: PollRoutesOptions): void {
  const { engine, metrics } = options;

  app.get<{ Params: { id: string }; Querystring: { from?: string; wait_ms?: string } }>(ROUTE_PATHS.poll, async (request, reply) => {
    const id = request.params.id;
    const cursor = cursorOf(request.headers[HEADERS.lastEventId], request.query.from);
    const waitMs = waitOf(request.query.wait_ms);
    await options.owners.check(request.caller, id);

    // Stop waiting when the time is up, the client goes away, or the gateway shuts down; the
    // follow also stops once it has handed over the page in which something arrived. Plain
    // listeners rather than AbortSignal.any, which on Node 20 keeps every request's signal
    // alive for as long as the gateway's shutdown signal.
    const poll = new PollCollector(cursor);
    const stop = poll.stop.bind(poll);
    reply.raw.on("close", stop);
    options.shutdown.addEventListener("abort", poll, { once: true });
    const timer = setTimeout(stop, waitMs);
    let outcome: FollowEnd;
    try {
      const start = await startOf(engine, metrics, id, cursor, { countResume: false, thenWait: waitMs > 0 });
      if (start.kind === "atEnd") return reply.status(204).send();
      if (start.reset) poll.startsAfterReset();
      outcome = await poll.follow(new Follow(options.tails, id, start.from, poll), start.firstPage);
    } finally {
      clearTimeout(timer);
      reply.raw.off("close", stop);
      options.shutdown.removeEventListener("abort", poll);
    }
    if (outcome.kind === "failed") throw outcome.error;
    return reply.header("cache-control", "no-store").send(poll.response(outcome));
  });
}

/** What one poll collects: the sink of its follow, which it stops as soon as something arrived. */
class PollCollector implements FollowSink {
  readonly transport = "long-poll";
  readonly #events: PollEvent[] = [];
  #next: string;
  #enough = false;
  #follow: Follow | undefined;
  #ended: ((outcome: FollowEnd) => void) | undefined;

  constructor(cursor: Cursor) {
    this.#next = formatCursor(cursor.offset, cursor.epoch);
  }

  /** Runs `follow` to its end: the first page at least, then until something arrived or `stop()`. */
  follow(follow: Follow, firstPage: readonly Entry[] | undefined): Promise<FollowEnd> {
    this.#follow = follow;
    const over = new Promise<FollowEnd>((resolve) => (this.#ended = resolve));
    follow.start(firstPage);
    if (this.#enough) follow.stop();
    return over;
  }

  /** The time is up, the client left, or the gateway shuts down. */
  stop(): void {
    this.#enough = true;
    this.#follow?.stop();
  }

  /** The gateway shuts down (as the listener of its signal). */
  handleEvent(): void {
    this.stop();
  }

  entry(frame: EncodedEntry): boolean {
    this.#events.push({ type: "entry", cursor: frame.cursor, entry: frame.entry });
    this.#next = frame.cursor;
    this.stop();
    return true;
  }

  reset(): boolean {
    this.startsAfterReset();
    this.stop();
    return true;
  }

  /** The cursor could not be vouched for: the answer starts with `reset`. */
  startsAfterReset(): void {
    this.#events.push({ type: "reset" });
    this.#next = "0";
  }

  whenDrained(resume: () => void): void {
    queueMicrotask(resume);
  }

  flush(): void {
    // The response is written once, at the end.
  }

  end(outcome: FollowEnd): void {
    this.#ended?.(outcome);
  }

  response(outcome: FollowEnd): PollResponse {
    return { events: this.#events, cursor: this.#next, ended: outcome.kind === "ended" };
  }
}

/** `wait_ms`: whole milliseconds from 0 to {@link LONG_POLL.maxWaitMs}; absent is the default. */
function waitOf(value: unknown): number {
  if (value === undefined) return LONG_POLL.defaultWaitMs;
  if (typeof value !== "string" || !/^\d{1,6}$/.test(value) || Number(value) > LONG_POLL.maxWaitMs) {
    throw new LifelineError("invalid_request", `wait_ms must be a whole number of milliseconds from 0 to ${LONG_POLL.maxWaitMs}.`);
  }
  return Number(value);
}
