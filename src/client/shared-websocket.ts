import type { WsClientFrame, WsServerFrame } from "../core/wire.ts";
import { isErrorCode } from "../core/errors.ts";
import { LifelineClientError, isRetryableCode } from "./errors.ts";
import { parseEntry, reasonOf, type SessionEnd, type TransportSink } from "./transport.ts";

/** The part of a WebSocket the SDK uses: the browser's global one and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: WebSocketEventLike) => void): void;
}

/** An event of a {@link WebSocketLike}; a `message` event also has `data`. */
export interface WebSocketEventLike {
  readonly type: string;
}

/** A WebSocket class: `globalThis.WebSocket` in browsers (and Node 22+), or `ws`'s in Node 20. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The timings and the limit of one shared socket. */
export interface SharedWebSocketLimits {
  /** Subscriptions at most on this socket (the server's limit). */
  readonly maxSubscriptions: number;
  /** An open socket that no subscription has used for this long is closed. */
  readonly idleCloseMs: number;
  /** A socket in doubt that has not answered a ping within this time is given up. */
  readonly probeTimeoutMs: number;
}

interface Subscription {
  readonly frame: Extract<WsClientFrame, { type: "subscribe" }>;
  readonly sink: TransportSink;
  /** The subscribe frame went out: frames may come for it, and leaving needs an unsubscribe. */
  subscribed: boolean;
  finish(end: SessionEnd): void;
}

const OPEN = 1;

/**
 * One WebSocket carrying many sessions, each a subscription with its own `sub` id. Frames are
 * routed by `sub`; any frame (and a protocol ping) shows the link is alive to every session on it.
 * When the socket closes or fails, every session on it ends and its follower resumes elsewhere.
 * A session that leaves sends `unsubscribe` and the socket stays open for the others.
 */
export class SharedWebSocket {
  readonly #socket: WebSocketLike;
  readonly #limits: SharedWebSocketLimits;
  readonly #onRetired: () => void;
  readonly #subs = new Map<string, Subscription>();
  /** Lowered when the server refuses a subscription for too many: it may be configured lower. */
  #capacity: number;
  #retired = false;
  /** True while a server frame is handled: a session that leaves then was ended by that frame. */
  #dispatching = false;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #idle: ReturnType<typeof setTimeout> | undefined;

  /** `socket` is freshly constructed; `onRetired` is called once, when no new session may join. */
  constructor(socket: WebSocketLike, limits: SharedWebSocketLimits, onRetired: () => void) {
    this.#socket = socket;
    this.#limits = limits;
    this.#capacity = limits.maxSubscriptions;
    this.#onRetired = onRetired;
    onProtocolPing(socket, () => this.#heard());
    socket.addEventListener("open", () => this.#subscribePending());
    socket.addEventListener("message", (event) => this.#onMessage((event as { readonly data?: unknown }).data));
    socket.addEventListener("error", () => this.#retire({ kind: "dropped", reason: "WebSocket error" }));
    socket.addEventListener("close", () => this.#retire({ kind: "closed" }));
  }

  /** Whether a new session may join: not given up, not in doubt, and below the subscription limit. */
  get accepting(): boolean {
    return !this.#retired && this.#socket.readyState <= OPEN && this.#probe === undefined && this.#subs.size < this.#capacity;
  }

  /** Closes the socket now; sessions still on it end as if the server had closed it. */
  close(): void {
    this.#retire({ kind: "closed" }, "close");
  }

  /** One session: a subscription on this socket until its `end`, its error, the socket's end, or `signal`. */
  subscribe(frame: Extract<WsClientFrame, { type: "subscribe" }>, sink: TransportSink, signal: AbortSignal): Promise<SessionEnd> {
    return new Promise((resolve) => {
      const { sub } = frame;
      const onAbort = (): void => {
        if (subscription.subscribed) this.#send({ type: "unsubscribe", sub });
        // Left outside a server frame: maybe the follower's watchdog gave up on a dead link.
        if (!this.#dispatching) this.#doubt();
        subscription.finish({ kind: "dropped", reason: reasonOf(signal.reason) });
      };
      const subscription: Subscription = {
        frame,
        sink,
        subscribed: false,
        finish: (end) => {
          if (this.#subs.get(sub) !== subscription) return;
          this.#subs.delete(sub);
          signal.removeEventListener("abort", onAbort);
          resolve(end);
          if (this.#subs.size === 0) this.#unused();
        },
      };
      if (signal.aborted) return resolve({ kind: "dropped", reason: reasonOf(signal.reason) });
      this.#subs.set(sub, subscription);
      clearTimeout(this.#idle);
      signal.addEventListener("abort", onAbort, { once: true });
      if (this.#socket.readyState === OPEN) this.#start(subscription);
    });
  }

  #start(subscription: Subscription): void {
    subscription.subscribed = true;
    this.#send(subscription.frame);
    subscription.sink.opened();
  }

  #subscribePending(): void {
    for (const subscription of [...this.#subs.values()]) {
      if (!subscription.subscribed && this.#subs.has(subscription.frame.sub)) this.#start(subscription);
    }
  }

  #onMessage(data: unknown): void {
    this.#dispatching = true;
    try {
      this.#heard();
      const frame = parseFrame(data);
      if (!frame) return;
      switch (frame.type) {
        case "ping":
          return this.#send({ type: "pong", t: frame.t });
        case "pong":
          return;
        case "error":
          return this.#onError(frame);
        default:
          return this.#route(frame);
      }
    } finally {
      this.#dispatching = false;
    }
  }

  #route(frame: Extract<WsServerFrame, { type: "entry" | "reset" | "end" }>): void {
    const subscription = this.#subs.get(frame.sub);
    if (!subscription?.subscribed) return; // an unsubscribed session's frames still in flight
    if (frame.type === "entry") {
      const entry = parseEntry(frame.entry);
      if (entry) subscription.sink.entry(entry, frame.cursor);
    } else if (frame.type === "reset") {
      subscription.sink.reset(undefined);
    } else {
      subscription.finish({ kind: "ended" });
    }
  }

  /** A subscription's error ends that session; one without `sub` leaves the socket in an unknown state. */
  #onError(frame: Extract<WsServerFrame, { type: "error" }>): void {
    const { code, message } = frame.error;
    const end: SessionEnd =
      isErrorCode(code) && !isRetryableCode(code)
        ? { kind: "fatal", error: new LifelineClientError(code, message) }
        : { kind: "dropped", reason: `${code}: ${message}` };
    if (frame.sub === undefined) return this.#retire({ kind: "dropped", reason: `${code}: ${message}` }, "close");
    const subscription = this.#subs.get(frame.sub);
    if (!subscription?.subscribed) return;
    if (code === "too_many_subscriptions") this.#capacity = Math.max(1, this.#subs.size - 1); // the retry goes to another socket
    subscription.finish(end);
  }

  /** The link showed it is alive: every session's watchdog is fed and a pending doubt is lifted. */
  #heard(): void {
    clearTimeout(this.#probe);
    this.#probe = undefined;
    for (const subscription of this.#subs.values()) subscription.sink.alive();
  }

  /** Asks the server for a pong; a socket that does not answer in time is given up. New sessions go elsewhere meanwhile. */
  #doubt(): void {
    if (this.#retired || this.#probe !== undefined || this.#socket.readyState !== OPEN) return;
    this.#send({ type: "ping", t: Date.now() });
    this.#probe = setTimeout(
      () => this.#retire({ kind: "dropped", reason: "the WebSocket did not answer a ping" }, "terminate"),
      this.#limits.probeTimeoutMs,
    );
  }

  /** No session is left: a socket still connecting served nobody and closes now; an open one waits a while for the next. */
  #unused(): void {
    if (this.#retired) return;
    if (this.#socket.readyState !== OPEN) return this.#retire({ kind: "closed" }, "close");
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.#retire({ kind: "closed" }, "close"), this.#limits.idleCloseMs);
  }

  /** No session may join any more; those on it end with `end` and their followers resume on another socket. */
  #retire(end: SessionEnd, shut?: "close" | "terminate"): void {
    if (!this.#retired) {
      this.#retired = true;
      clearTimeout(this.#probe);
      clearTimeout(this.#idle);
      this.#onRetired();
    }
    for (const subscription of [...this.#subs.values()]) subscription.finish(end);
    if (shut) closeSocket(this.#socket, shut);
  }

  #send(frame: WsClientFrame): void {
    if (this.#socket.readyState === OPEN) this.#socket.send(JSON.stringify(frame));
  }
}

/** Closes politely, or, for a link that does not answer, drops it at once where the WebSocket can (`ws`'s `terminate`). */
function closeSocket(socket: WebSocketLike, how: "close" | "terminate"): void {
  try {
    const terminate = (socket as unknown as { terminate?: unknown }).terminate;
    if (how === "terminate" && typeof terminate === "function") (terminate as () => void).call(socket);
    else socket.close(1000);
  } catch {
    // already closing
  }
}

/** `ws` emits protocol-level pings as a Node event; browsers answer them silently and show nothing. */
function onProtocolPing(socket: WebSocketLike, alive: () => void): void {
  const emitter = socket as unknown as { on?: unknown };
  if (typeof emitter.on === "function") (emitter.on as (event: string, listener: () => void) => void).call(socket, "ping", alive);
}

/** A server frame with the fields its type needs; `undefined` for anything else. */
function parseFrame(data: unknown): WsServerFrame | undefined {
  let text: string;
  if (typeof data === "string") text = data;
  else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) text = new TextDecoder().decode(data);
  else return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const frame = value as {
    type?: unknown;
    sub?: unknown;
    cursor?: unknown;
    t?: unknown;
    error?: { code?: unknown; message?: unknown } | null;
  };
  const hasSub = typeof frame.sub === "string";
  switch (frame.type) {
    case "entry":
      return hasSub && typeof frame.cursor === "string" ? (value as WsServerFrame) : undefined;
    case "reset":
    case "end":
      return hasSub ? (value as WsServerFrame) : undefined;
    case "error":
      return (hasSub || frame.sub === undefined) && typeof frame.error?.code === "string" && typeof frame.error.message === "string"
        ? (value as WsServerFrame)
        : undefined;
    case "ping":
    case "pong":
      return frame.t === undefined || typeof frame.t === "number" ? (value as WsServerFrame) : undefined;
    default:
      return undefined;
  }
}
