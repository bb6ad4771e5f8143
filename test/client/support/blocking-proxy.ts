import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";

/** What the proxy does with event streams: let them through, refuse them, or let the headers through and hold the body forever. */
export type StreamPolicy = "pass" | "refuse" | "buffer";

export interface BlockingProxyOptions {
  readonly eventStreams: StreamPolicy;
  /** Refuse WebSocket upgrades with a 403 page. */
  readonly refuseWebSockets: boolean;
  /** Refuse everything but the POST that starts an answer, with a 403 page. */
  readonly refuseAllReads?: boolean;
}

/** An HTTP proxy on a free loopback port that behaves like a restrictive corporate one. */
export interface BlockingProxy {
  readonly url: string;
  /** Requests seen, by kind: `events`, `poll`, `upgrade`, `other`. */
  readonly seen: Record<"events" | "poll" | "upgrade" | "other", number>;
  close(): Promise<void>;
}

const REFUSAL = "<html><body><h1>403 Forbidden</h1>Blocked by policy.</body></html>";

export async function startBlockingProxy(targetPort: number, options: BlockingProxyOptions): Promise<BlockingProxy> {
  const seen = { events: 0, poll: 0, upgrade: 0, other: 0 };
  const sockets = new Set<Socket>();
  const refuse = (res: ServerResponse): void => {
    res.writeHead(403, { "content-type": "text/html" }).end(REFUSAL);
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? "";
    const stream = (req.headers.accept ?? "").includes("text/event-stream") || path.includes("/events");
    if (stream) seen.events += 1;
    else if (path.includes("/poll")) seen.poll += 1;
    else seen.other += 1;
    if (options.refuseAllReads && req.method === "GET") return refuse(res);
    if (stream && options.eventStreams === "refuse") return refuse(res);
    const upstream = httpRequest({ host: "127.0.0.1", port: targetPort, method: req.method, path, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (stream && options.eventStreams === "buffer") {
        res.flushHeaders();
        answer.resume(); // swallowed: the body would be released only at the end, which a follower never waits for
        return;
      }
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("upgrade", (_req: IncomingMessage, socket: Duplex) => {
    seen.upgrade += 1;
    if (options.refuseWebSockets) {
      socket.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: text/html\r\ncontent-length: ${REFUSAL.length}\r\nconnection: close\r\n\r\n${REFUSAL}`,
      );
      return;
    }
    socket.destroy(); // this proxy does not tunnel upgrades
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
