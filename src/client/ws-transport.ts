import { routes } from "../core/routes.ts";
import { WS_PROTOCOL_LIMITS } from "../core/wire.ts";
import { LifelineClientError } from "./errors.ts";
import { SharedWebSocket, type SharedWebSocketLimits, type WebSocketConstructor } from "./shared-websocket.ts";
import { reasonOf, type SessionEnd, type Transport } from "./transport.ts";

export type { WebSocketConstructor, WebSocketEventLike, WebSocketLike } from "./shared-websocket.ts";

/** How the client shares its sockets. */
export const SHARED_WEBSOCKET_LIMITS: SharedWebSocketLimits = Object.freeze({
  /** The server refuses a subscription beyond its limit on one connection: the next follow opens another. */
  maxSubscriptions: WS_PROTOCOL_LIMITS.maxSubscriptions,
  /**
   * Long enough for back-to-back follows (the next one usually starts within a POST's round trip)
   * to reuse the socket; short enough that a page or a Node script that stopped following does not
   * hold a gateway connection (nor keep the process alive) for long. A chat user's pause between
   * questions is longer: the new socket's handshake then overlaps the POST that starts the answer.
   */
  idleCloseMs: 5_000,
  /** As long as the server gives a closing socket to answer (`closeGraceMs`); a wrong guess only costs a resume. */
  probeTimeoutMs: 2_000,
});

/** The server answers a larger frame with an error that names no subscription. */
const MAX_FRAME_BYTES = WS_PROTOCOL_LIMITS.maxFrameBytes;

/** The WebSocket endpoint's URL for an http(s) base URL. */
export function webSocketUrl(baseUrl: string): string {
  return `${baseUrl.replace(/^http/i, "ws")}${routes.websocket()}`;
}

/**
 * The WebSocket protocol of `core/wire.ts`, one shared connection per client: each session is a
 * subscription (with a `sub` id never used before) on the first socket with room, which is opened
 * on demand and closed after {@link SHARED_WEBSOCKET_LIMITS}'s `idleCloseMs` without sessions.
 * When a socket fails, every session on it ends and the followers resume on a new one. Heartbeats
 * are the server's `ping` frames and, where the WebSocket exposes them (`ws` does), protocol pings.
 */
export function webSocketTransport(baseUrl: string, WebSocketClass: WebSocketConstructor): Transport {
  const url = webSocketUrl(baseUrl);
  const sockets = new Set<SharedWebSocket>(); // in the order they were opened: the oldest fill up first
  let subscriptions = 0;

  const socketWithRoom = (): SharedWebSocket | SessionEnd => {
    for (const socket of sockets) if (socket.accepting) return socket;
    try {
      const socket = new SharedWebSocket(new WebSocketClass(url), SHARED_WEBSOCKET_LIMITS, () => sockets.delete(socket));
      sockets.add(socket);
      return socket;
    } catch (error) {
      return { kind: "dropped", reason: error instanceof Error ? error.message : "cannot open a WebSocket" };
    }
  };

  return {
    name: "websocket",
    session(id, cursor, sink, signal, token): Promise<SessionEnd> {
      if (signal.aborted) return Promise.resolve({ kind: "dropped", reason: reasonOf(signal.reason) });
      // Each subscription carries its own token, so generations of several tokens share one socket.
      const frame = {
        type: "subscribe",
        sub: `s${++subscriptions}`,
        generation: id,
        ...(cursor === undefined ? {} : { cursor }),
        ...(token === undefined ? {} : { token }),
      } as const;
      // Refused here rather than by the server, whose answer could not say which follow it concerns.
      if (new TextEncoder().encode(JSON.stringify(frame)).length > MAX_FRAME_BYTES) {
        return Promise.resolve({
          kind: "fatal",
          error: new LifelineClientError("body_too_large", `A WebSocket frame may have at most ${MAX_FRAME_BYTES} bytes.`),
        });
      }
      const socket = socketWithRoom();
      return socket instanceof SharedWebSocket ? socket.subscribe(frame, sink, signal) : Promise.resolve(socket);
    },
    close() {
      for (const socket of [...sockets]) socket.close();
    },
  };
}
