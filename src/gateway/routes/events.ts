import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { ServerResponse } from "node:http";
import { LifelineError } from "../../core/errors.ts";
import { ROUTE_PATHS } from "../../core/routes.ts";
import { HEADERS, RESET_EVENT, SSE_PING, encodeSseFrame } from "../../core/wire.ts";
import type { Engine } from "../../engine/port.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { EncodedEntry } from "../encoded-entry.ts";
import { Follow, type FollowEnd, type FollowSink } from "../follow.ts";
import { cursorOf, startOf } from "../log-follower.ts";
import type { LogTails } from "../log-tail.ts";

export interface EventRoutesOptions {
  readonly engine: Engine;
  readonly metrics: Metrics;
  /** The gateway's shared tails, which every follow of every transport joins at the end of a log. */
  readonly tails: LogTails;
  readonly heartbeatMs: number;
  /** Aborts when the gateway shuts down: open streams end so clients resume elsewhere. */
  readonly shutdown: AbortSignal;
}

const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  connection: "keep-alive",
  "x-accel-buffering": "no",
} as const;

/** Asks the browser to come back quickly after a cut. */
const SSE_RETRY = "retry: 1000\n\n";

const SSE_RESET = encodeSseFrame({ id: "0", event: RESET_EVENT, data: JSON.stringify({ reason: "cursor_not_continuous" }) });

/**
 * `GET /v1/generations/:id/events`: the log as Server-Sent Events, resumable by cursor.
 *
 * On an engine that can lose acknowledged entries in a failover, each cursor is
 * `<attempt>:<offset>`, and before continuing after it the stream checks that the log still holds
 * that attempt's entry there. When it does not (the entry was lost, and another attempt wrote a
 * different one), the client gets `reset` and the log again from offset 1: never a different text
 * under an old cursor.
 *
 * An open stream holds no timer and no pending call of its own: one heartbeat timer pings every
 * stream, and at the end of the log the stream waits in its generation's shared tail.
 */
export function eventRoutes(app: FastifyInstance, options: EventRoutesOptions): void {
  const { engine, metrics } = options;
  const open: OpenStreams = new Map();
  const onClose = function (this: ServerResponse): void {
    open.get(this)?.finish();
  };
  const heartbeat = setInterval(() => {
    for (const stream of open.values()) stream.ping();
  }, options.heartbeatMs);
  heartbeat.unref();
  options.shutdown.addEventListener(
    "abort",
    () => {
      clearInterval(heartbeat);
      for (const stream of [...open.values()]) stream.finish();
    },
    { once: true },
  );

  app.get<{ Params: { id: string }; Querystring: { from?: string } }>(ROUTE_PATHS.events, async (request, reply) => {
    const id = request.params.id;
    const cursor = cursorOf(request.headers[HEADERS.lastEventId], request.query.from);
    const start = await startOf(engine, metrics, id, cursor);
    if (start.kind === "atEnd") return reply.status(204).send();
    if (options.shutdown.aborted) throw new LifelineError("shutting_down");

    request.log.info({ generation: id, from: cursor.offset, reset: start.reset }, "event stream opened");
    reply.hijack();
    const res = reply.raw;
    // The headers go out with the first page, in one write.
    res.cork();
    res.writeHead(200, SSE_HEADERS);
    res.write(start.reset ? SSE_RETRY + SSE_RESET : SSE_RETRY);
    const stream = new EventStream(res, request.log, id, open, onClose, metrics);
    stream.follow = new Follow(options.tails, id, start.from, stream);
    stream.follow.start(start.firstPage);
    return reply;
  });
}

/** The open event streams of a gateway, by response: the heartbeat pings each, a shutdown ends each. */
type OpenStreams = Map<ServerResponse, EventStream>;

/** One open event stream: the sink its follow writes to. */
class EventStream implements FollowSink {
  follow: Follow | undefined;
  readonly #res: ServerResponse;
  /** Corked by the route until the first page is written. */
  #corked = true;
  readonly #log: FastifyBaseLogger;
  readonly #id: string;
  readonly #open: OpenStreams;
  readonly #metrics: Metrics;

  /** `onClose`: one listener for every stream's `close` (called with the response as `this`), rather than a closure each. */
  constructor(res: ServerResponse, log: FastifyBaseLogger, id: string, open: OpenStreams, onClose: () => void, metrics: Metrics) {
    this.#res = res;
    this.#log = log;
    this.#id = id;
    this.#open = open;
    this.#metrics = metrics;
    open.set(res, this);
    metrics.openStreams.inc();
    res.once("close", onClose);
  }

  entry(frame: EncodedEntry): boolean {
    const room = this.#res.write(frame.sse);
    if (!room) this.flush(); // no drain comes while corked
    return room;
  }

  reset(): boolean {
    const room = this.#res.write(SSE_RESET);
    if (!room) this.flush();
    return room;
  }

  flush(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#res.uncork();
  }

  whenDrained(resume: () => void): void {
    this.#res.once("drain", resume);
  }

  end(outcome: FollowEnd): void {
    if (outcome.kind === "failed" && !this.#res.destroyed) {
      this.#log.error({ err: outcome.error, generation: this.#id }, "event stream failed");
    }
    this.#close();
  }

  ping(): void {
    this.#res.write(SSE_PING);
  }

  /** The client left, or the gateway shuts down. */
  finish(): void {
    this.follow?.close();
    this.#close();
  }

  #close(): void {
    if (this.#open.get(this.#res) !== this) return;
    this.#open.delete(this.#res);
    this.flush();
    this.#metrics.openStreams.dec();
    this.#res.end();
    this.#log.info({ generation: this.#id }, "event stream closed");
  }
}
