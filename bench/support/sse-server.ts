import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { GenerationRequest } from "../../src/core/entries.ts";

/**
 * What the baseline servers (the direct pipe and the XADD+PUBLISH floor) share: one
 * `GET <path>?content=…&seed=…&max_tokens=…` per answer, answered as an SSE stream with the
 * gateway's headers, on a fresh loopback port.
 */

/** The request of `GET <path>?content=…&seed=…&max_tokens=…`, or undefined for another path (answered 404). */
export function answerRequestOf(req: IncomingMessage, res: ServerResponse, path: string): GenerationRequest | undefined {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname !== path) {
    res.writeHead(404).end();
    return undefined;
  }
  return {
    model: "sim",
    messages: [{ role: "user", content: url.searchParams.get("content") ?? "" }],
    seed: Number(url.searchParams.get("seed") ?? 0),
    max_tokens: Number(url.searchParams.get("max_tokens") ?? 100),
  };
}

/** Starts the SSE response as the gateway does; the controller aborts when the client goes away. */
export function openSse(res: ServerResponse): AbortController {
  const closed = new AbortController();
  res.on("close", () => closed.abort());
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  res.write("retry: 1000\n\n");
  return closed;
}

/** Listens on a free loopback port; `close` also drops the client fleet's idle keep-alive connections, which would otherwise hold it open. */
export async function listenOnLoopback(server: Server): Promise<{ readonly url: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
