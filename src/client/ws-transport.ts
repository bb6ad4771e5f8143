import { WS_PATH, type WsClientFrame, type WsServerFrame } from "../core/wire.ts";
import { LifelineClientError, isRetryableCode } from "./errors.ts";
import { parseEntry, type SessionEnd, type Transport } from "./transport.ts";

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

const OPEN = 1;

/** The WebSocket endpoint's URL for an http(s) base URL. */
export function webSocketUrl(baseUrl: string): string {
  return `${baseUrl.replace(/^http/i, "ws")}${WS_PATH}`;
}

/**
 * The WebSocket protocol of `core/wire.ts`: one connection per session, one subscription on it,
 * resumed with the cursor. Heartbeats are the server's `ping` messages and, where the WebSocket
 * exposes them (the `ws` package does), its protocol-level ping frames.
 */
export function webSocketTransport(baseUrl: string, WebSocketClass: WebSocketConstructor): Transport {
  const url = webSocketUrl(baseUrl);
  let subscriptions = 0;
  return {
    name: "websocket",
    session(id, cursor, sink, signal): Promise<SessionEnd> {
      const sub = `s${++subscriptions}`;
      return new Promise((resolve) => {
        let settled = false;
        let socket: WebSocketLike;
        const finish = (end: SessionEnd): void => {
          if (settled) return;
          settled = true;
          signal.removeEventListener("abort", onAbort);
          try {
            socket.close(1000);
          } catch {
            // already closing
          }
          resolve(end);
        };
        const onAbort = (): void => finish({ kind: "dropped", reason: String(signal.reason ?? "aborted") });
        try {
          socket = new WebSocketClass(url);
        } catch (error) {
          resolve({ kind: "dropped", reason: error instanceof Error ? error.message : "cannot open a WebSocket" });
          return;
        }
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        const send = (frame: WsClientFrame): void => {
          if (socket.readyState === OPEN) socket.send(JSON.stringify(frame));
        };
        onProtocolPing(socket, () => sink.alive());
        socket.addEventListener("open", () => {
          send({ type: "subscribe", sub, generation: id, ...(cursor === undefined ? {} : { cursor }) });
          sink.opened();
        });
        socket.addEventListener("message", (event) => {
          sink.alive();
          const frame = parseFrame((event as { readonly data?: unknown }).data);
          if (!frame) return;
          if (frame.type === "ping") return send({ type: "pong", t: frame.t });
          if (frame.type === "pong" || ("sub" in frame && frame.sub !== undefined && frame.sub !== sub)) return;
          if (frame.type === "entry") {
            const entry = parseEntry(frame.entry);
            if (entry) sink.entry(entry, frame.cursor);
          } else if (frame.type === "reset") {
            sink.reset(undefined);
          } else if (frame.type === "end") {
            finish({ kind: "ended" });
          } else {
            const { code, message } = frame.error;
            finish(isRetryableCode(code) ? { kind: "dropped", reason: `${code}: ${message}` } : { kind: "fatal", error: new LifelineClientError(code, message) });
          }
        });
        socket.addEventListener("close", () => finish({ kind: "closed" }));
        socket.addEventListener("error", () => finish({ kind: "dropped", reason: "WebSocket error" }));
      });
    },
  };
}

/** `ws` emits protocol-level pings as a Node event; browsers answer them silently and show nothing. */
function onProtocolPing(socket: WebSocketLike, alive: () => void): void {
  const emitter = socket as unknown as { on?: unknown };
  if (typeof emitter.on === "function") (emitter.on as (event: string, listener: () => void) => void).call(socket, "ping", alive);
}

function parseFrame(data: unknown): WsServerFrame | undefined {
  let text: string;
  if (typeof data === "string") text = data;
  else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) text = new TextDecoder().decode(data);
  else return undefined;
  try {
    const frame = JSON.parse(text) as { type?: unknown };
    return typeof frame === "object" && frame !== null && typeof frame.type === "string" ? (frame as WsServerFrame) : undefined;
  } catch {
    return undefined;
  }
}
