/**
 * The wire format shared by the server and its clients: header names, SSE framing and the
 * parser for it. Nothing here does I/O. The paths are in `core/routes.ts`.
 */
import { ROUTE_PATHS } from "./routes.ts";

export const HEADERS = {
  lastEventId: "last-event-id",
  idempotencyKey: "idempotency-key",
  idempotentReplayed: "idempotent-replayed",
} as const;

/** The `event:` name of the frame that tells a client to drop its text and rebuild from offset 1. */
export const RESET_EVENT = "reset";

/** The comment frame sent as a heartbeat. */
export const SSE_PING = ": ping\n\n";

const LINE_BREAK = /\r\n|\r|\n/;

/** One SSE frame. `id` and `event` may not contain a line break; `data` may, one `data:` line each. */
export function encodeSseFrame(frame: { id?: string; event?: string; data: string }): string {
  let out = "";
  if (frame.id !== undefined) {
    if (LINE_BREAK.test(frame.id)) throw new RangeError("SSE id may not contain a line break");
    out += `id: ${frame.id}\n`;
  }
  if (frame.event !== undefined) {
    if (LINE_BREAK.test(frame.event)) throw new RangeError("SSE event may not contain a line break");
    out += `event: ${frame.event}\n`;
  }
  for (const line of frame.data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return `${out}\n`;
}

export interface SseMessage {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

/**
 * An incremental parser for `text/event-stream` as the HTML standard defines it: feed it chunks,
 * get whole messages. Comments (heartbeats) are reported through `onComment`.
 */
export class SseParser {
  #buffer = "";
  #data: string[] = [];
  #event = "";
  #id: string | undefined;
  #sawId = false;

  constructor(
    private readonly onMessage: (message: SseMessage) => void,
    private readonly onComment: (text: string) => void = () => undefined,
  ) {}

  push(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const match = LINE_BREAK.exec(this.#buffer);
      if (!match) return;
      // A lone CR at the very end may be the first half of CRLF: wait for more.
      if (match[0] === "\r" && match.index === this.#buffer.length - 1) return;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      this.#line(line);
    }
  }

  #line(line: string): void {
    if (line === "") {
      if (this.#data.length > 0) {
        this.onMessage({ id: this.#sawId ? this.#id : undefined, event: this.#event || "message", data: this.#data.join("\n") });
      }
      this.#data = [];
      this.#event = "";
      this.#sawId = false;
      return;
    }
    if (line.startsWith(":")) {
      this.onComment(line.slice(1).trim());
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
    else if (field === "id" && !value.includes("\0")) {
      this.#id = value;
      this.#sawId = true;
    }
  }
}

/**
 * The WebSocket protocol (`GET /v1/ws`): JSON text frames. One connection carries many
 * subscriptions, each named by an id the client chooses.
 *
 * client → server
 *   { "type": "subscribe", "sub": "<id>", "generation": "gen_…", "cursor"?: "<cursor>", "token"?: "llt_…" }
 *     `token`: a read token that opens this generation; it authorizes this subscription alone, and
 *     lets a connection opened without credentials subscribe (decision 034)
 *   { "type": "unsubscribe", "sub": "<id>" }
 *   { "type": "ping", "t"?: <number> }            → { "type": "pong", "t"?: <number> }
 * server → client
 *   { "type": "entry", "sub": "<id>", "cursor": "<cursor>", "entry": { …log entry… } }
 *   { "type": "reset", "sub": "<id>" }             drop the text; the log follows from offset 1
 *   { "type": "end", "sub": "<id>" }               the terminal entry was delivered (or the cursor was already at it)
 *   { "type": "error", "sub"?: "<id>", "error": { "code", "message" } }
 *   { "type": "ping", "t": <number> }              heartbeat; answer with pong
 */
export type WsClientFrame =
  | { readonly type: "subscribe"; readonly sub: string; readonly generation: string; readonly cursor?: string; readonly token?: string }
  | { readonly type: "unsubscribe"; readonly sub: string }
  | { readonly type: "ping"; readonly t?: number }
  | { readonly type: "pong"; readonly t?: number };

export type WsServerFrame =
  | { readonly type: "entry"; readonly sub: string; readonly cursor: string; readonly entry: unknown }
  | { readonly type: "reset"; readonly sub: string }
  | { readonly type: "end"; readonly sub: string }
  | { readonly type: "error"; readonly sub?: string; readonly error: { readonly code: string; readonly message: string } }
  | { readonly type: "ping"; readonly t: number }
  | { readonly type: "pong"; readonly t?: number };

/**
 * An `entry` frame of the WebSocket protocol in two parts that, put together, are the JSON of
 * `{ type: "entry", sub, cursor, entry }`: the subscription's head, built once per subscription,
 * and the entry's rest, built once per entry and shared by every subscription that sends it.
 */
export function wsEntryFrameHead(sub: string): string {
  return `{"type":"entry","sub":${JSON.stringify(sub)}`;
}

/** The rest of an `entry` frame after {@link wsEntryFrameHead}; `entryJson` is the entry as JSON. */
export function wsEntryFrameRest(cursor: string, entryJson: string): string {
  return `,"cursor":${JSON.stringify(cursor)},"entry":${entryJson}}`;
}

/** The WebSocket endpoint's path: `ROUTE_PATHS.websocket` of `core/routes.ts`. */
export const WS_PATH = ROUTE_PATHS.websocket;

/** Limits of the WebSocket protocol that both sides must know. */
export const WS_PROTOCOL_LIMITS = {
  /** A larger client frame gets an `error` frame (`body_too_large`) that names no subscription. */
  maxFrameBytes: 64 * 1024,
  /** Subscriptions open at once on one connection; the next gets `too_many_subscriptions`. */
  maxSubscriptions: 100,
} as const;

/** Close code for a client too slow to keep up: it resumes from its cursors on a new connection. */
export const WS_CLOSE_SLOW_CONSUMER = 4008;

/**
 * Close code for a connection opened without credentials that held no subscription for two
 * heartbeats: such a connection is worth a socket only while a read token's subscription is on it.
 */
export const WS_CLOSE_IDLE_WITHOUT_CREDENTIALS = 4001;

/**
 * HTTP long-poll (`GET /v1/generations/:id/poll?from=<cursor>&wait_ms=<ms>`): for networks that
 * let neither an event stream nor a WebSocket through. Each request returns what the log holds
 * after the cursor, waiting up to `wait_ms` for the first entry; the client sends `cursor` back
 * as the next `from`. The same cursor checks and `reset` as SSE apply.
 */
export interface PollResponse {
  /** In log order; after a `reset` the entries start again from offset 1. */
  readonly events: readonly PollEvent[];
  /** Where to continue: the last event's cursor (`"0"` after a trailing reset), or the request's own when nothing came. */
  readonly cursor: string;
  /** The terminal entry is among `events`: the log is over. */
  readonly ended: boolean;
}

export type PollEvent = { readonly type: "entry"; readonly cursor: string; readonly entry: unknown } | { readonly type: "reset" };

export const LONG_POLL = {
  /** How long a poll waits for the first entry when the request does not say. */
  defaultWaitMs: 25_000,
  /** The longest wait a request may ask for: intermediaries cut idle requests at about a minute. */
  maxWaitMs: 60_000,
} as const;
