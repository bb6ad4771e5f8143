import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { EntryBody, GenerationRequest } from "../../src/core/entries.ts";
import { stampEntry } from "../../src/core/entries.ts";
import { encodeSseFrame } from "../../src/core/wire.ts";
import type { ModelProvider } from "../../src/llm/provider.ts";

/** A running baseline server. */
export interface DirectPipe {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The baseline: the model streamed straight into an SSE response, one frame per token, with the
 * gateway's framing and entry shapes but no log, no queue and no worker. What it costs is what any
 * streaming proxy costs; what Lifeline costs beyond it is the price of durability.
 *
 * `GET /direct?content=…&seed=…&max_tokens=…` answers one user message.
 */
export async function startDirectPipe(model: ModelProvider): Promise<DirectPipe> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== "/direct") {
      res.writeHead(404).end();
      return;
    }
    const request: GenerationRequest = {
      model: "sim",
      messages: [{ role: "user", content: url.searchParams.get("content") ?? "" }],
      seed: Number(url.searchParams.get("seed") ?? 0),
      max_tokens: Number(url.searchParams.get("max_tokens") ?? 100),
    };
    const closed = new AbortController();
    res.on("close", () => closed.abort());
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write("retry: 1000\n\n");
    let offset = 0;
    const frame = (body: EntryBody): string => {
      const entry = stampEntry(body, ++offset, new Date().toISOString());
      return encodeSseFrame({ id: String(entry.offset), event: entry.type, data: JSON.stringify(entry) });
    };
    res.write(frame({ type: "created", attempt: 0, request }));
    res.write(frame({ type: "started", attempt: 1, worker: "direct", model: model.name }));
    void (async () => {
      try {
        for await (const event of model.stream({ request, prefix: "", signal: closed.signal })) {
          if (event.type === "token") res.write(frame({ type: "delta", attempt: 1, text: event.text }));
          else if (event.type === "finish") res.write(frame({ type: "completed", attempt: 1, finishReason: event.finishReason, usage: event.usage }));
        }
      } catch {
        // The client went away; nothing to keep.
      } finally {
        res.end();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        // Idle keep-alive connections of the load generator would otherwise hold the close open.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
