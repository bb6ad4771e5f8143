import type { FastifyBaseLogger, FastifyReply } from "fastify";
import type { ServerResponse } from "node:http";
import { SSE_PING } from "../core/wire.ts";
import type { Metrics } from "../observability/metrics.ts";

/** The headers of every event stream the gateway serves; a door may add its own. */
export const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  connection: "keep-alive",
  "x-accel-buffering": "no",
} as const;

/** Who is told when an open stream is over because its client left or the gateway shuts down. */
export interface SseOwner {
  /** The client left or the gateway shuts down: stop feeding the stream (it is ended already). */
  finished(): void;
}

/**
 * The event streams a route holds open: one heartbeat timer pings them all, a shutdown ends each,
 * and one `close` listener serves every response (no closure per stream: an idle stream costs only
 * its objects). Any door that answers with Server-Sent Events opens its streams here.
 */
export class SseStreams {
  readonly #open = new Map<ServerResponse, SseStream>();
  readonly #metrics: Metrics;
  readonly #onClose: (this: ServerResponse) => void;

  constructor(options: { readonly heartbeatMs: number; readonly shutdown: AbortSignal; readonly metrics: Metrics }) {
    this.#metrics = options.metrics;
    const open = this.#open;
    this.#onClose = function (this: ServerResponse): void {
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
  }

  /**
   * Takes the reply over and opens an event stream on it: status 200, `headers` (the SSE ones and
   * the door's own) and `first` written corked, so they leave with the first page in one write.
   * `name` is what the logs call the stream (a generation id).
   */
  open(reply: FastifyReply, name: string, first: string, headers: Readonly<Record<string, string>> = SSE_HEADERS): SseStream {
    reply.hijack();
    const res = reply.raw;
    res.cork();
    res.writeHead(200, headers);
    if (first !== "") res.write(first);
    const stream = new SseStream(res, reply.log, name, this.#open, this.#metrics);
    res.once("close", this.#onClose);
    return stream;
  }
}

/** One open event stream: writes with backpressure, corked until its first page is given. */
export class SseStream {
  /** Told when the stream ends because its client left or the gateway shuts down. */
  owner: SseOwner | undefined;
  readonly #res: ServerResponse;
  #corked = true;
  readonly #log: FastifyBaseLogger;
  readonly #name: string;
  readonly #open: Map<ServerResponse, SseStream>;
  readonly #metrics: Metrics;

  constructor(res: ServerResponse, log: FastifyBaseLogger, name: string, open: Map<ServerResponse, SseStream>, metrics: Metrics) {
    this.#res = res;
    this.#log = log;
    this.#name = name;
    this.#open = open;
    this.#metrics = metrics;
    open.set(res, this);
    metrics.openStreams.inc();
  }

  /** Writes `text`; false when the response's buffer is full (then wait for {@link whenDrained}). */
  write(text: string): boolean {
    const room = this.#res.write(text);
    if (!room) this.flush(); // no drain comes while corked
    return room;
  }

  /** What is held back (the headers and the first page) goes out now. */
  flush(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#res.uncork();
  }

  whenDrained(resume: () => void): void {
    this.#res.once("drain", resume);
  }

  ping(): void {
    this.#res.write(SSE_PING);
  }

  /** Ends the response (the stream said all it had to say); `error` is logged when the client is still there. */
  end(error?: unknown): void {
    if (error !== undefined && !this.#res.destroyed) this.#log.error({ err: error, generation: this.#name }, "event stream failed");
    this.#close();
  }

  /** The client left, or the gateway shuts down. */
  finish(): void {
    this.owner?.finished();
    this.#close();
  }

  #close(): void {
    if (this.#open.get(this.#res) !== this) return;
    this.#open.delete(this.#res);
    this.flush();
    this.#metrics.openStreams.dec();
    this.#res.end();
    this.#log.info({ generation: this.#name }, "event stream closed");
  }
}
