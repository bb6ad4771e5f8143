import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import { z } from "zod";
import { parseCursor, type Cursor } from "../../core/cursor.ts";
import { LifelineError, type ApiErrorCode } from "../../core/errors.ts";
import { ROUTE_PATHS } from "../../core/routes.ts";
import {
  WS_CLOSE_IDLE_WITHOUT_CREDENTIALS,
  WS_CLOSE_SLOW_CONSUMER,
  WS_PROTOCOL_LIMITS,
  wsEntryFrameHead,
  type WsServerFrame,
} from "../../core/wire.ts";
import { GENERATION_ID } from "../../core/generation-id.ts";
import type { Engine } from "../../engine/port.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { EncodedEntry } from "../encoded-entry.ts";
import { Follow, type FollowEnd, type FollowSink } from "../follow.ts";
import { rawHttpAnswer } from "../http-errors.ts";
import { startOf } from "../log-follower.ts";
import type { Authenticator } from "../auth/authentication.ts";
import { OPEN, requireScope, type Caller } from "../auth/caller.ts";
import type { OpenStreams } from "../auth/open-streams.ts";
import type { Owners } from "../auth/owners.ts";
import type { CountRequest } from "../auth/request-limits.ts";
import type { LogTails } from "../log-tail.ts";

export interface WebSocketRoutesOptions {
  readonly engine: Engine;
  /**
   * Who is asking: the upgrade carries the key in `Authorization` (or a read token as `?token=`),
   * like any request; or nothing, and then each subscription carries its own read token.
   */
  readonly auth: Authenticator;
  /** Who may see which generation. */
  readonly owners: Owners;
  /** Each subscription holds one of its caller's open-stream slots. */
  readonly openStreams: OpenStreams;
  /**
   * Counts the upgrade and each `subscribe` frame as one request of its caller, in the HTTP
   * requests' counters (decision 064); an upgrade without credentials is not counted, its
   * subscriptions are, against their read tokens' generations.
   */
  readonly countRequest: CountRequest;
  readonly metrics: Metrics;
  /** The gateway's shared tails, which every follow of every transport joins at the end of a log. */
  readonly tails: LogTails;
  /** Protocol and `ping` frames go out this often; a connection that has not answered by the next one is cut. */
  readonly heartbeatMs: number;
  /** Aborts when the gateway shuts down: every socket closes with 1001 so clients resume elsewhere. */
  readonly shutdown: AbortSignal;
}

/** The limits of one connection. */
export const WS_LIMITS = {
  /** A larger text frame gets an `error` frame (`body_too_large`); the connection stays open. */
  maxFrameBytes: WS_PROTOCOL_LIMITS.maxFrameBytes,
  /** A frame larger than this closes the connection with 1009: ws would have to buffer all of it. */
  maxPayloadBytes: 1024 * 1024,
  maxSubscriptions: WS_PROTOCOL_LIMITS.maxSubscriptions,
  /** A subscription waits for the socket to drain once this much is queued: the log is the buffer. */
  lowWatermarkBytes: 256 * 1024,
  /** Queued beyond this (and beyond the low watermark plus one frame), the client is too slow: 4008. */
  highWatermarkBytes: 1024 * 1024,
  /** How long a closing socket may take to answer the close frame before it is cut. */
  closeGraceMs: 2000,
} as const;

const SUB = z.string().regex(/^[\x21-\x7e]{1,64}$/, "must be 1 to 64 visible ASCII characters");
const T = z.number().optional();
const CLIENT_FRAME = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("subscribe"),
    sub: SUB,
    generation: z.string().max(256),
    cursor: z.string().max(256).optional(),
    token: z.string().max(1024).optional(),
  }),
  z.strictObject({ type: z.literal("unsubscribe"), sub: SUB }),
  z.strictObject({ type: z.literal("ping"), t: T }),
  z.strictObject({ type: z.literal("pong"), t: T }),
]);
const FRAME_TYPES = ["subscribe", "unsubscribe", "ping", "pong"];
type SubscribeFrame = Extract<z.infer<typeof CLIENT_FRAME>, { type: "subscribe" }>;

/**
 * `GET /v1/ws`: the log over WebSocket (protocol in `core/wire.ts`). One connection carries many
 * subscriptions, each a {@link Follow} with the same cursor checks and `reset` as SSE. A bad frame
 * gets an `error` frame and the connection stays open.
 */
export function websocketRoutes(app: FastifyInstance, options: WebSocketRoutesOptions): void {
  const server = new WebSocketServer({
    noServer: true,
    maxPayload: WS_LIMITS.maxPayloadBytes,
    perMessageDeflate: false,
    clientTracking: false,
  });
  const connections = new Set<Connection>();
  let nextId = 0;

  app.server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => undefined); // a reset during the handshake is the client's business
    if ((request.url ?? "").split("?")[0] !== ROUTE_PATHS.websocket) return refuseUpgrade(socket, new LifelineError("not_found"));
    if (options.shutdown.aborted) return refuseUpgrade(socket, new LifelineError("shutting_down"));
    void callerOfUpgrade(options, request).then((caller) => {
      if (caller instanceof LifelineError) return refuseUpgrade(socket, caller);
      if (socket.destroyed) return;
      const credentials = caller === null ? null : credentialsOf(request);
      server.handleUpgrade(request, socket, head, (ws) => accept(ws, socket as Socket, credentials));
    });
  });
  const accept = (ws: WebSocket, socket: Socket, credentials: Credentials | null): void => {
    const log = app.log.child({ ws: ++nextId });
    const connection = new Connection(ws, socket, options, log, credentials);
    connections.add(connection);
    void connection.closed.then(() => connections.delete(connection));
    if (options.shutdown.aborted) connection.close(1001, "gateway shutting down");
  };

  const heartbeat = setInterval(() => {
    for (const connection of connections) connection.heartbeat();
  }, options.heartbeatMs);
  heartbeat.unref();

  const closeAll = async (): Promise<void> => {
    clearInterval(heartbeat);
    for (const connection of connections) connection.close(1001, "gateway shutting down");
    await Promise.all([...connections].map((c) => c.closed));
  };
  options.shutdown.addEventListener("abort", () => void closeAll(), { once: true });
  // The HTTP server's close waits for upgraded sockets: they go first, each with 1001.
  app.addHook("preClose", closeAll);
}

/**
 * The caller of an upgrade, or the error to refuse it with (a bad or revoked key, a bad or expired
 * token, no read scope, the caller over its requests per minute, the engine or the key store down).
 * An upgrade with credentials counts as one request of its caller. One without credentials in a
 * deployment with keys is `null`: a connection on which only subscriptions that carry a read token
 * are served (decision 034), each counted against its token's generation (decision 064).
 */
async function callerOfUpgrade(
  options: Pick<WebSocketRoutesOptions, "auth" | "countRequest">,
  request: IncomingMessage,
): Promise<Caller | null | LifelineError> {
  try {
    const { authorization, queryToken } = credentialsOf(request);
    if (queryToken === undefined && (authorization ?? "") === "") return (await options.auth.required()) ? null : OPEN;
    const caller = await options.auth.callerOf({ authorization }, queryToken);
    if (caller.kind !== "token") requireScope(caller, "generations:read");
    await options.countRequest(caller);
    return caller;
  } catch (error) {
    return error instanceof LifelineError ? error : new LifelineError("engine_unavailable");
  }
}

/** What an upgrade presented: its `Authorization` and its `?token=`. */
interface Credentials {
  readonly authorization: string | undefined;
  readonly queryToken: string | undefined;
}

function credentialsOf(request: IncomingMessage): Credentials {
  const queryToken = new URL(request.url ?? "/", "http://x").searchParams.get("token") ?? undefined;
  return { authorization: request.headers.authorization, queryToken };
}

/** Answers an upgrade that will not happen with a plain HTTP error in the API's JSON shape (a 429 with its `Retry-After`). */
function refuseUpgrade(socket: Duplex, error: LifelineError): void {
  socket.end(rawHttpAnswer(error));
}

/** One client's socket and its subscriptions. */
class Connection {
  readonly closed: Promise<void>;
  readonly #ws: WebSocket;
  readonly #options: WebSocketRoutesOptions;
  readonly #log: FastifyBaseLogger;
  readonly #subs = new Map<string, Subscription>();
  /** The socket under `#ws`, to see how much the client has taken. */
  readonly #socket: Socket;
  #answered = true;
  #takenAtTick = 0;
  #closing = false;
  #largestFrame = 0;
  #cut: NodeJS.Timeout | undefined;

  /** What the upgrade presented, checked again at each subscription; `null` when it presented nothing. */
  readonly #credentials: Credentials | null;
  /** Heartbeat ticks in a row at which a connection opened without credentials held no subscription. */
  #idleTicks = 0;

  constructor(ws: WebSocket, socket: Socket, options: WebSocketRoutesOptions, log: FastifyBaseLogger, credentials: Credentials | null) {
    this.#credentials = credentials;
    this.#ws = ws;
    this.#socket = socket;
    this.#options = options;
    this.#log = log;
    this.closed = new Promise((resolve) => {
      ws.on("close", (code: number) => {
        this.#closing = true;
        clearTimeout(this.#cut);
        this.#stopAll();
        log.debug({ code }, "websocket closed");
        resolve();
      });
    });
    ws.on("error", (error: Error) => log.info({ err: error }, "websocket error"));
    ws.on("pong", () => (this.#answered = true));
    ws.on("message", (data: RawData, isBinary: boolean) => {
      try {
        this.#onMessage(data, isBinary);
      } catch (error) {
        // A bug handling one frame costs that frame, not the process.
        log.error({ err: error }, "websocket frame failed");
        this.#error("internal");
      }
    });
    log.debug("websocket opened");
  }

  /**
   * One heartbeat tick. A connection that has not answered the last ping but took data since the
   * last tick is reading, only behind its queue: it waits. One that took nothing is cut: with 4008
   * when frames are still queued for it (it stopped reading), without a word when none are (dead).
   * One opened without credentials that held no subscription at two ticks in a row is closed (4001).
   */
  heartbeat(): void {
    if (this.#closing) return;
    if (!this.#answered) {
      if (this.#takeProgress()) return;
      if (this.#ws.bufferedAmount > 0) return this.#slowConsumer();
      this.#log.info("websocket did not answer a ping; cut");
      this.#closing = true;
      this.#stopAll();
      this.#ws.terminate();
      return;
    }
    if (this.#credentials === null) {
      this.#idleTicks = this.#subs.size === 0 ? this.#idleTicks + 1 : 0;
      if (this.#idleTicks >= 2) {
        this.#log.info("websocket without credentials held no subscription; closed");
        return this.close(WS_CLOSE_IDLE_WITHOUT_CREDENTIALS, "no credentials and no subscription");
      }
    }
    this.#answered = false;
    this.#ws.ping();
    this.#send({ type: "ping", t: Date.now() });
    this.#takeProgress(); // the pings themselves are no sign of a reader
  }

  /** Whether the client took data since the last call: what left the process's buffer for the network. */
  #takeProgress(): boolean {
    const taken = this.#socket.bytesWritten - this.#socket.writableLength;
    const progressed = taken > this.#takenAtTick;
    this.#takenAtTick = taken;
    return progressed;
  }

  /** Ends every subscription and closes the socket; cut after a grace period if the client does not answer. */
  close(code: number, reason: string): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#stopAll();
    this.#ws.close(code, reason);
    this.#cut = setTimeout(() => this.#ws.terminate(), WS_LIMITS.closeGraceMs);
  }

  #slowConsumer(): void {
    this.#log.info({ buffered: this.#ws.bufferedAmount }, "websocket client too slow; closed");
    this.close(WS_CLOSE_SLOW_CONSUMER, "slow consumer: resume from your cursors");
  }

  #stopAll(): void {
    for (const subscription of this.#subs.values()) subscription.close();
    this.#subs.clear();
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#closing) return;
    if (isBinary) return this.#error("invalid_request", "Frames are JSON text; binary frames are refused.");
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (bytes.length > WS_LIMITS.maxFrameBytes) {
      return this.#error("body_too_large", `A frame may have at most ${WS_LIMITS.maxFrameBytes} bytes; this one has ${bytes.length}.`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(bytes.toString("utf8"));
    } catch {
      return this.#error("invalid_json", "The frame is not valid JSON.");
    }
    const sub = subOf(raw);
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return this.#error("invalid_request", "A frame is a JSON object.");
    const type = (raw as { type?: unknown }).type;
    if (typeof type !== "string" || !FRAME_TYPES.includes(type)) {
      return this.#error("invalid_request", `Unknown frame type; expected one of ${FRAME_TYPES.join(", ")}.`, sub);
    }
    const parsed = CLIENT_FRAME.safeParse(raw);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "frame"}: ${i.message}`).join("; ");
      return this.#error("invalid_request", `Bad ${type} frame: ${issues}.`, sub);
    }
    const frame = parsed.data;
    switch (frame.type) {
      case "subscribe":
        return this.#subscribe(frame);
      case "unsubscribe":
        // Unsubscribing from a subscription that already ended is a harmless race, not an error.
        this.#subs.get(frame.sub)?.close();
        this.#subs.delete(frame.sub);
        return;
      case "ping":
        return this.#send(frame.t === undefined ? { type: "pong" } : { type: "pong", t: frame.t });
      case "pong":
        this.#answered = true; // it read our ping frame: as good as a protocol pong
        return;
    }
  }

  #subscribe(frame: SubscribeFrame): void {
    const { sub } = frame;
    if (this.#subs.has(sub)) return this.#error("invalid_request", `Subscription "${sub}" is already open on this connection.`, sub);
    if (this.#subs.size >= WS_LIMITS.maxSubscriptions) {
      return this.#error("too_many_subscriptions", `A connection holds at most ${WS_LIMITS.maxSubscriptions} subscriptions.`, sub);
    }
    if (!GENERATION_ID.test(frame.generation)) return this.#error("generation_not_found", undefined, sub);
    // Like SSE: no cursor, or an empty one, is the start of the log.
    let cursor: Cursor = { epoch: undefined, offset: 0 };
    if (frame.cursor !== undefined && frame.cursor !== "") {
      const parsed = parseCursor(frame.cursor);
      if (!parsed) return this.#error("invalid_cursor", `"${frame.cursor.slice(0, 64)}" is not a cursor.`, sub);
      cursor = parsed;
    }
    const subscription = new Subscription(this, sub, frame.generation);
    this.#subs.set(sub, subscription);
    void this.#follow(subscription, cursor, frame.token);
  }

  /**
   * Who asks for this subscription: its own read token when it carries one, else the connection's
   * caller, checked again as each HTTP request is (a key revoked or a token expired since the upgrade opens nothing more).
   */
  async #callerOf(token: string | undefined): Promise<Caller> {
    if (token !== undefined) return this.#options.auth.callerOf({}, token);
    if (this.#credentials === null) {
      throw new LifelineError(
        "unauthorized",
        "This connection was opened without credentials: each subscribe frame carries its read token.",
      );
    }
    const { authorization, queryToken } = this.#credentials;
    const caller = await this.#options.auth.callerOf({ authorization }, queryToken);
    if (caller.kind !== "token") requireScope(caller, "generations:read");
    return caller;
  }

  /** Finds where the subscription starts, then lets its follow stream it until the end, an unsubscribe, or the socket's end. */
  async #follow(subscription: Subscription, cursor: Cursor, token: string | undefined): Promise<void> {
    const { engine, metrics } = this.#options;
    const id = subscription.generation;
    try {
      const caller = await this.#callerOf(token);
      // Each subscription is a request of its caller, as a read of the same log over HTTP is.
      await this.#options.countRequest(caller);
      await this.#options.owners.check(caller, id);
      if (subscription.closed) return;
      subscription.freeSlot = await this.#options.openStreams.open(caller);
      if (subscription.closed) return subscription.freeSlot();
      const start = await startOf(engine, metrics, id, cursor);
      if (subscription.closed) return;
      if (start.kind === "atEnd") return this.finish(subscription, { type: "end", sub: subscription.sub });
      if (start.reset) this.#send({ type: "reset", sub: subscription.sub });
      subscription.follow = new Follow(this.#options.tails, id, start.from, subscription);
      metrics.openStreams.inc();
      subscription.follow.start(start.firstPage);
    } catch (error) {
      if (!subscription.closed) this.failed(subscription, error);
    }
  }

  /** The subscription's last frame; its id is free again before the client can see the frame. */
  finish(subscription: Subscription, frame: WsServerFrame): void {
    if (this.#subs.get(subscription.sub) === subscription) this.#subs.delete(subscription.sub);
    subscription.close();
    this.#send(frame);
  }

  /** Ends a subscription whose follow failed with an error frame. */
  failed(subscription: Subscription, error: unknown): void {
    const known = error instanceof LifelineError ? error : new LifelineError("internal");
    if (known.status >= 500) {
      this.#log.error({ err: error, generation: subscription.generation, sub: subscription.sub }, "websocket subscription failed");
    }
    this.finish(subscription, errorFrame(known, subscription.sub));
  }

  /**
   * Sends a subscription's entry frame. When more than the low watermark is queued, returns false
   * and tells the subscription once this frame is out (`written`), so a slow reader pauses its follows instead of
   * growing this process's memory. A client that lets more than the high watermark pile up is
   * closed with 4008 and resumes from its cursors.
   */
  sendEntry(text: string, subscription: Subscription): boolean {
    return this.#sendText(text, subscription);
  }

  /** A subscription's follow ended. */
  streamClosed(): void {
    this.#options.metrics.openStreams.dec();
  }

  #error(code: ApiErrorCode, message?: string, sub?: string): void {
    this.#send(errorFrame(new LifelineError(code, message), sub));
  }

  #send(frame: WsServerFrame): void {
    this.#sendText(JSON.stringify(frame));
  }

  #sendText(text: string, waiting?: Subscription): boolean {
    const ws = this.#ws;
    if (this.#closing || ws.readyState !== WebSocket.OPEN) return true;
    const queued = ws.bufferedAmount;
    if (queued > Math.max(WS_LIMITS.highWatermarkBytes, WS_LIMITS.lowWatermarkBytes + this.#largestFrame)) {
      this.#slowConsumer();
      return true;
    }
    const data = Buffer.from(text);
    if (data.length > this.#largestFrame) this.#largestFrame = data.length;
    if (!waiting || queued + data.length <= WS_LIMITS.lowWatermarkBytes) {
      ws.send(data, { binary: false });
      return true;
    }
    ws.send(data, { binary: false }, () => waiting.written()); // called once the frame is written out, or on error
    return false;
  }
}

/** One subscription of a connection: the sink its follow writes to. */
class Subscription implements FollowSink {
  readonly transport = "websocket";
  readonly sub: string;
  readonly generation: string;
  follow: Follow | undefined;
  closed = false;
  /** Frees the caller's open-stream slot this subscription holds. */
  freeSlot: () => void = () => undefined;
  readonly #connection: Connection;
  /** The start of this subscription's entry frames, built once. */
  #head: string | undefined;
  #queued = false;
  #resume: (() => void) | undefined;

  constructor(connection: Connection, sub: string, generation: string) {
    this.#connection = connection;
    this.sub = sub;
    this.generation = generation;
  }

  entry(frame: EncodedEntry): boolean {
    this.#head ??= wsEntryFrameHead(this.sub);
    const room = this.#connection.sendEntry(this.#head + frame.wsRest, this);
    if (!room) this.#queued = true;
    return room;
  }

  reset(): boolean {
    const room = this.#connection.sendEntry(JSON.stringify({ type: "reset", sub: this.sub } satisfies WsServerFrame), this);
    if (!room) this.#queued = true;
    return room;
  }

  flush(): void {
    // Each frame goes out as it is sent.
  }

  /** The frame that filled the socket past the low watermark is out. */
  written(): void {
    this.#queued = false;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
  }

  whenDrained(resume: () => void): void {
    if (this.#queued) this.#resume = resume;
    else queueMicrotask(resume);
  }

  end(outcome: FollowEnd): void {
    switch (outcome.kind) {
      case "ended":
        return this.#connection.finish(this, { type: "end", sub: this.sub });
      case "gone":
        return this.#connection.finish(
          this,
          errorFrame(new LifelineError("generation_not_found", "The log is gone (expired or lost)."), this.sub),
        );
      case "failed":
        return this.#connection.failed(this, outcome.error);
      case "stopped":
        return this.close();
    }
  }

  /** Ends the subscription without another frame. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.freeSlot();
    if (this.follow) {
      this.follow.close();
      this.#connection.streamClosed();
    }
  }
}

function errorFrame(error: LifelineError, sub: string | undefined): WsServerFrame {
  return { type: "error", ...(sub === undefined ? {} : { sub }), error: { code: error.code, message: error.message } };
}

/** The frame's `sub` when it has a usable one, so a client can tell which subscription erred. */
function subOf(raw: unknown): string | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const sub = (raw as { sub?: unknown }).sub;
  return SUB.safeParse(sub).success ? (sub as string) : undefined;
}
