import type { FastifyInstance } from "fastify";
import { LifelineError } from "../../core/errors.ts";
import { ROUTE_PATHS } from "../../core/routes.ts";
import { HEADERS, RESET_EVENT, encodeSseFrame } from "../../core/wire.ts";
import type { Engine } from "../../engine/port.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { EncodedEntry } from "../encoded-entry.ts";
import { Follow, type FollowEnd, type FollowSink } from "../follow.ts";
import { cursorOf, startOf } from "../log-follower.ts";
import type { Owners } from "../auth/owners.ts";
import type { LogTails } from "../log-tail.ts";
import { SseStreams, type SseOwner, type SseStream } from "../sse-streams.ts";

export interface EventRoutesOptions {
  readonly engine: Engine;
  /** Who may see which generation. */
  readonly owners: Owners;
  readonly metrics: Metrics;
  /** The gateway's shared tails, which every follow of every transport joins at the end of a log. */
  readonly tails: LogTails;
  readonly heartbeatMs: number;
  /** Aborts when the gateway shuts down: open streams end so clients resume elsewhere. */
  readonly shutdown: AbortSignal;
}

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
  const streams = new SseStreams(options);

  app.get<{ Params: { id: string }; Querystring: { from?: string } }>(ROUTE_PATHS.events, async (request, reply) => {
    const id = request.params.id;
    const cursor = cursorOf(request.headers[HEADERS.lastEventId], request.query.from);
    await options.owners.check(request.caller, id);
    const start = await startOf(engine, metrics, id, cursor);
    if (start.kind === "atEnd") return reply.status(204).send();
    if (options.shutdown.aborted) throw new LifelineError("shutting_down");

    request.log.info({ generation: id, from: cursor.offset, reset: start.reset }, "event stream opened");
    const stream = new EventStream(streams.open(reply, id, start.reset ? SSE_RETRY + SSE_RESET : SSE_RETRY));
    stream.follow = new Follow(options.tails, id, start.from, stream);
    stream.follow.start(start.firstPage);
    return reply;
  });
}

/** One open event stream of the native API: the sink its follow writes entries to. */
class EventStream implements FollowSink, SseOwner {
  readonly transport = "sse";
  follow: Follow | undefined;
  readonly #sse: SseStream;

  constructor(sse: SseStream) {
    this.#sse = sse;
    sse.owner = this;
  }

  entry(frame: EncodedEntry): boolean {
    return this.#sse.write(frame.sse);
  }

  reset(): boolean {
    return this.#sse.write(SSE_RESET);
  }

  flush(): void {
    this.#sse.flush();
  }

  whenDrained(resume: () => void): void {
    this.#sse.whenDrained(resume);
  }

  end(outcome: FollowEnd): void {
    this.#sse.end(outcome.kind === "failed" ? outcome.error : undefined);
  }

  finished(): void {
    this.follow?.close();
  }
}
